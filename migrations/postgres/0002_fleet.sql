-- The fleet: each scooter's current state and last known reading.
-- `state_version` grows with every state change, so the live index applies them in order.
create table scooters (
    scooter_id text primary key,
    device_token_hash text not null unique,
    state text not null check (state in ('available', 'reserved', 'on_trip', 'non_operational', 'non_contactable', 'removed')),
    state_reason text,
    state_version bigint not null default 0,
    lat double precision not null,
    lon double precision not null,
    range_km double precision not null,
    battery_pct double precision not null,
    last_seen_ms bigint not null,
    registered_at_ms bigint not null
);

-- Every state change (MDS 2.0 events).
create table scooter_events (
    id bigint generated always as identity primary key,
    scooter_id text not null references scooters (scooter_id),
    event_type text not null,
    from_state text,
    to_state text not null,
    to_reason text,
    at_ms bigint not null
);
create index scooter_events_by_scooter on scooter_events (scooter_id, at_ms);

-- Telemetry history, one row per point; a repeated `recorded_at` is the same point.
create table telemetry (
    scooter_id text not null references scooters (scooter_id),
    recorded_at_ms bigint not null,
    received_at_ms bigint not null,
    lat double precision not null,
    lon double precision not null,
    range_km double precision not null,
    battery_pct double precision not null,
    speed_kmh double precision,
    primary key (scooter_id, recorded_at_ms)
);
create index telemetry_by_time on telemetry (recorded_at_ms);
