{#-
    Whether any row of `relation` has `column` after the run's "now", asked of the warehouse
    while the model compiles, so a model can leave out work that only rows after "now" need.
    True when it cannot ask (not executing, or the relation is not built yet, as in a unit
    test): the work is then done, and finds nothing to do if there is nothing.
-#}
{% macro has_rows_after_now(relation, column) -%}
    {%- set found = namespace(any=true) -%}
    {%- if execute -%}
        {%- set built = load_relation(relation) -%}
        {%- if built is not none -%}
            {%- set counted = run_query(
                "select count(*) from " ~ built ~ " where " ~ column ~ " > " ~ tessera_now()
            ).rows -%}
            {%- for row in counted -%}
                {%- set found.any = row[0] != 0 -%}
            {%- endfor -%}
        {%- endif -%}
    {%- endif -%}
    {{ return(found.any) }}
{%- endmacro %}
