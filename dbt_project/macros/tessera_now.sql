{#-
    "Now" for time rules: the run's logical time (var tessera__now, set by the orchestrator from
    the schedule tick, or by hand), else the time this dbt invocation started. Never the wall
    clock at the moment a row is computed, so one run has one "now".
-#}
{% macro tessera_now() -%}
    {%- if var('tessera__now') -%}
        cast('{{ var("tessera__now") }}' as timestamptz)
    {%- else -%}
        cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S") }}+00' as timestamptz)
    {%- endif -%}
{%- endmacro %}
