{#- Use the folder's schema as is (`staging`, `marts`), not dbt's `<target>_<schema>`:
    analysts and the pushes read `marts.<model>`, whatever the target. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
