{#-
    The relation if the warehouse has it, else none: for tables that something other than dbt
    writes (the erasure tombstone, the activation ledger), which a fresh warehouse does not have
    yet. A model reads an empty stand-in instead of failing on its first night:

        {%- set ledger = optional_relation('activation', 'audience_assignments') -%}
        {% if ledger %} select ... from {{ ledger }} {% else %} select ... where false {% endif %}
-#}
{% macro optional_relation(schema, identifier) -%}
    {%- if execute -%}
        {{ return(adapter.get_relation(database=target.database, schema=schema, identifier=identifier)) }}
    {%- endif -%}
    {{ return(none) }}
{%- endmacro %}
