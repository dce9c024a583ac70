-- Every version of the operator's zone map, as uploaded. The highest version is in force;
-- version 1 is the built-in Paris + Neuilly-sur-Seine set when nobody uploaded one first.
create table zone_sets (
    version bigint primary key,
    created_at_ms bigint not null,
    -- The operator account that uploaded it; null for the built-in defaults. Not a foreign
    -- key: the history must outlive the accounts it mentions.
    created_by text,
    feature_count bigint not null,
    geojson text not null
);

-- Every version of the operating hours; the highest is in force, 07:00-23:00 Paris time
-- until an operator sets others.
create table operating_hours (
    version bigint primary key,
    created_at_ms bigint not null,
    created_by text,
    timezone text not null,
    open_minute bigint not null check (open_minute >= 0 and open_minute < 1440),
    close_minute bigint not null check (close_minute >= 0 and close_minute <= 1440)
);
