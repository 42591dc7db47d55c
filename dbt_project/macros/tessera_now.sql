{#-
    "Now" for time rules: the run's logical time, else the time this dbt invocation started. Never
    the wall clock at the moment a row is computed, so one run has one "now".

    The logical time is the var tessera__now (by hand, and in unit tests) or the environment's
    TESSERA_DBT_NOW, which the orchestrator sets from the schedule tick. The orchestrator uses the
    environment because dbt re-parses the whole project whenever --vars change, which would be
    every night. The env var is read only when executing: read while parsing, dbt would record
    its value and re-parse every model that calls this macro whenever it changes.
-#}
{% macro tessera_now() -%}
    {%- set now = var('tessera__now') or (env_var('TESSERA_DBT_NOW', '') if execute else '') -%}
    {%- if now -%}
        cast('{{ now }}' as timestamptz)
    {%- else -%}
        cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S") }}+00' as timestamptz)
    {%- endif -%}
{%- endmacro %}
