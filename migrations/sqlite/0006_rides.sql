-- Rides. At most one open ride per rider and per scooter, enforced here so that it holds
-- across every server process sharing the database.
create table rides (
    id text primary key,
    rider_id text not null references accounts (id),
    scooter_id text not null,
    status text not null check (status in ('active', 'ended', 'cancelled')),
    started_at_ms bigint not null,
    ended_at_ms bigint,
    start_lat double precision not null,
    start_lon double precision not null,
    end_lat double precision,
    end_lon double precision,
    price_per_minute text not null,
    currency text not null,
    duration_s bigint,
    billed_minutes bigint,
    amount_cents bigint,
    trial_minutes bigint,
    pack_minutes bigint,
    wallet_cents bigint,
    vat_cents bigint,
    receipt_id text unique,
    cancel_reason text,
    outside_zone_since_ms bigint,
    speed_limit_kmh double precision
);
create unique index rides_one_active_per_rider on rides (rider_id) where status = 'active';
create unique index rides_one_active_per_scooter on rides (scooter_id) where status = 'active';
create index rides_by_rider on rides (rider_id, started_at_ms);

-- Free holds on a scooter: one active reservation per rider and per scooter.
create table reservations (
    id text primary key,
    rider_id text not null references accounts (id),
    scooter_id text not null,
    status text not null check (status in ('active', 'cancelled', 'expired', 'converted')),
    created_at_ms bigint not null,
    expires_at_ms bigint not null,
    closed_at_ms bigint
);
create unique index reservations_one_active_per_rider on reservations (rider_id) where status = 'active';
create unique index reservations_one_active_per_scooter on reservations (scooter_id) where status = 'active';

-- Commands for scooters (unlock, lock, speed limit), delivered over MQTT or by polling,
-- and acknowledged by the scooter.
create table device_commands (
    id text primary key,
    scooter_id text not null,
    ride_id text,
    kind text not null check (kind in ('unlock', 'lock', 'speed_limit')),
    payload text not null,
    status text not null check (status in ('pending', 'acked', 'expired')),
    created_at_ms bigint not null,
    acked_at_ms bigint,
    -- When a server published it over MQTT (scooters may also poll for it).
    published_at_ms bigint
);
create index device_commands_pending on device_commands (scooter_id, status, created_at_ms);

-- What happened during a ride beyond its start and end: leaving and re-entering the
-- service area, entering and leaving slow zones.
create table ride_events (
    id text primary key,
    ride_id text not null references rides (id),
    kind text not null,
    lat double precision not null,
    lon double precision not null,
    at_ms bigint not null
);
create index ride_events_by_ride on ride_events (ride_id, at_ms);
