-- Server settings kept in the database (e.g. the generated token-signing key).
create table settings (
    key text primary key,
    value text not null
);

-- Riders, crew members and operators. Emails are stored lower-cased.
create table accounts (
    id text primary key,
    email text not null unique,
    password_hash text not null,
    role text not null check (role in ('rider', 'crew', 'operator')),
    display_name text,
    marketing_opt_in boolean not null default false,
    created_at_ms bigint not null
);
