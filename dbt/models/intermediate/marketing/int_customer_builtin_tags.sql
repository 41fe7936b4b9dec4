-- Every built-in tag of a customer in one row: the identity and tag columns of customer_profile.
-- A table, because both customer_profile and int_customer_custom_tags read it.

{{ config(materialized='table', file_format='iceberg') }}

with

natural_tags as (
    select * from {{ ref('int_customer_natural_tags') }}
),

policy_tags as (
    select * from {{ ref('int_customer_policy_tags') }}
),

behaviour_tags as (
    select * from {{ ref('int_customer_behaviour_tags') }}
),

content_preferences as (
    select * from {{ ref('int_customer_content_preference') }}
),

value_tags as (
    select * from {{ ref('int_customer_value_tags') }}
),

service_tags as (
    select * from {{ ref('int_customer_service_tags') }}
),

consents as (
    select * from {{ ref('int_customer_consents_latest') }}
),

final as (
    select
        natural_tags.customer_id,
        natural_tags.name_masked,
        natural_tags.phone_masked,
        natural_tags.phone_token,
        natural_tags.id_number_token,
        natural_tags.customer_since_date,
        natural_tags.gender,
        natural_tags.age,
        natural_tags.age_band,
        natural_tags.province,
        natural_tags.city,
        natural_tags.city_tier,
        natural_tags.acquisition_channel,
        natural_tags.risk_rating,
        policy_tags.lines_held,
        policy_tags.has_auto,
        policy_tags.has_property,
        policy_tags.has_accident,
        policy_tags.has_health,
        policy_tags.has_life,
        policy_tags.policy_count,
        policy_tags.total_premium,
        policy_tags.tenure_years,
        policy_tags.next_renewal_date,
        policy_tags.days_to_renewal,
        policy_tags.vehicle_age_years,
        policy_tags.vehicle_value_band,
        behaviour_tags.last_active_at,
        behaviour_tags.active_days_30d,
        behaviour_tags.preferred_channel,
        content_preferences.content_preference,
        value_tags.customer_tier,
        value_tags.lifetime_value,
        value_tags.claims_ratio,
        service_tags.claims_12m,
        service_tags.has_open_claim,
        service_tags.has_open_complaint,
        service_tags.has_pending_recording_review,
        consents.consent_app_push,
        consents.consent_sms,
        consents.consent_wechat
    from natural_tags
    inner join policy_tags on natural_tags.customer_id = policy_tags.customer_id
    inner join behaviour_tags on natural_tags.customer_id = behaviour_tags.customer_id
    inner join content_preferences on natural_tags.customer_id = content_preferences.customer_id
    inner join value_tags on natural_tags.customer_id = value_tags.customer_id
    inner join service_tags on natural_tags.customer_id = service_tags.customer_id
    inner join consents on natural_tags.customer_id = consents.customer_id
)

select * from final
