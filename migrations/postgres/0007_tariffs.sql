-- Every version of the tariff an operator set through the API; the highest is in force.
-- With none stored, the tariff of the configuration (SCOOTFLEET_PRICE_PER_MINUTE, …) is.
create table tariffs (
    version bigint primary key,
    created_at_ms bigint not null,
    -- The operator account that set it. Not a foreign key: the history outlives accounts.
    created_by text,
    rate_per_minute_cents bigint not null check (rate_per_minute_cents > 0),
    -- A decimal fraction as text, e.g. '0.20'.
    vat_rate text not null,
    free_trial_minutes bigint not null check (free_trial_minutes >= 0),
    unlock_minimum_cents bigint not null check (unlock_minimum_cents >= 0),
    -- The pack catalogue as `id:minutes:price,…`, e.g. 'pack_50:50:12.00'.
    packs text not null
);

-- A ride's terms are those in force at its unlock, kept on the ride so a tariff change never
-- reaches a ride in progress: the price per minute (already kept), the VAT rate, and the free
-- minutes a first ride was offered. Rides started before have none and take today's.
alter table rides add column vat_rate text;
alter table rides add column trial_minutes_offered bigint;
