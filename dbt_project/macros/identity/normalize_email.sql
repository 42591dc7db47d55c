{#-
    An email as a matching key: trimmed, lowercased, blank as null, and a misspelled mail domain
    (seed email_domain_corrections) replaced by the domain meant. The corrections are written
    into the SQL as a MAP literal when the model compiles, so staging needs no join for them.
-#}
{% macro normalize_email(col) -%}
    {%- set cleaned = "nullif(lower(trim(" ~ col ~ ")), '')" -%}
    {%- set corrections = email_domain_corrections_map() | trim -%}
    {%- if corrections -%}
        coalesce(
            regexp_extract({{ cleaned }}, '^(.*@)', 1)
            || {{ corrections }}[regexp_extract({{ cleaned }}, '@([^@]*)$', 1)],
            {{ cleaned }}
        )
    {%- else -%}
        {{ cleaned }}
    {%- endif -%}
{%- endmacro %}


{#-
    The seed's corrections as a DuckDB MAP literal, typo domain to domain; nothing while dbt
    parses or when the seed is empty. The ref() makes the seed a parent of every model that
    normalizes emails, so a build loads it first. Unit tests override this macro with their
    own map.
-#}
{% macro email_domain_corrections_map() -%}
    {%- set seed = ref('email_domain_corrections') -%}
    {%- if execute -%}
        {%- if load_relation(seed) is none -%}
            {{ exceptions.raise_compiler_error(
                "The seed email_domain_corrections is not in the warehouse yet: run `dbt seed`, "
                ~ "or build the model with its parents (`dbt build --select +" ~ model.name ~ "`)."
            ) }}
        {%- endif -%}
        {%- set rows = run_query(
            "select distinct lower(trim(typo_domain)), lower(trim(domain)) from " ~ seed
            ~ " where nullif(trim(typo_domain), '') is not null and nullif(trim(domain), '') is not null"
            ~ " order by 1"
        ).rows -%}
        {%- set pairs = [] -%}
        {%- for typo, meant in rows -%}
            {%- do pairs.append("'" ~ typo | replace("'", "''") ~ "': '" ~ meant | replace("'", "''") ~ "'") -%}
        {%- endfor -%}
        {%- if pairs -%}
            map { {{- pairs | join(', ') -}} }
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
