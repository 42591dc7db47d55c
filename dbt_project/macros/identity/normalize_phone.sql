{#-
    A phone as a matching key in E.164 ('+' then 8 to 15 digits), or null when the value cannot
    be one. Formatting is dropped; a number typed without its country gets the shop's default
    country code (var tessera__default_phone_country_code).
-#}
{% macro normalize_phone(col) -%}
    {%- set country = var('tessera__default_phone_country_code') | string | trim | replace('+', '') -%}
    {%- set digits = "regexp_replace(" ~ col ~ ", '[^0-9]', '', 'g')" -%}
    {%- set international = "starts_with(ltrim(" ~ col ~ "), '+')" -%}
    case
        when {{ international }}
            then case when length({{ digits }}) between 8 and 15 then '+' || {{ digits }} end
        when length({{ digits }}) = 10
            then '+{{ country }}' || {{ digits }}
        when length({{ digits }}) = {{ 10 + country | length }} and starts_with({{ digits }}, '{{ country }}')
            then '+' || {{ digits }}
    end
{%- endmacro %}
