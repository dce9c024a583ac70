-- Billing: a double-entry ledger in integer cents, pack minutes, the free trial, ride charges
-- and idempotency keys.

-- Ledger accounts, named by code: `rider:<id>:wallet`, `external:payments`, `revenue:rides`,
-- `revenue:packs`, `expense:goodwill`. A balance is the sum of the account's entries;
-- `version` is bumped to serialise the postings on a rider's wallet.
create table ledger_accounts (
    code text primary key,
    owner_id text,
    currency text not null,
    version bigint not null default 0,
    created_at_ms bigint not null
);

-- One balanced movement of money: its entries sum to zero. A reference is charged once per
-- kind (one ride_charge per ride, one top_up per payment).
create table ledger_transactions (
    id text primary key,
    kind text not null check (kind in ('top_up', 'pack_purchase', 'ride_charge', 'refund', 'credit')),
    reference text not null,
    rider_id text,
    created_at_ms bigint not null,
    unique (kind, reference)
);

create table ledger_entries (
    id bigint generated always as identity primary key,
    transaction_id text not null references ledger_transactions (id),
    account_code text not null references ledger_accounts (code),
    amount_cents bigint not null check (amount_cents <> 0)
);
create index ledger_entries_by_account on ledger_entries (account_code);
create index ledger_entries_by_transaction on ledger_entries (transaction_id);

-- Prepaid pack minutes, as movements: bought (+) and ridden (-). The balance is the sum.
create table pack_minute_movements (
    id bigint generated always as identity primary key,
    rider_id text not null,
    minutes bigint not null check (minutes <> 0),
    kind text not null check (kind in ('pack_purchase', 'ride', 'refund', 'credit')),
    reference text not null,
    created_at_ms bigint not null,
    unique (kind, reference)
);
create index pack_minute_movements_by_rider on pack_minute_movements (rider_id);

-- A rider's free trial, used by the first ride charged.
create table free_trial_uses (
    rider_id text primary key,
    ride_id text not null,
    minutes bigint not null,
    used_at_ms bigint not null
);

-- How each ride was paid for: one row per ride. The rate is an exact decimal string.
create table ride_charges (
    ride_id text primary key,
    rider_id text not null,
    duration_s bigint not null,
    billed_minutes bigint not null,
    rate text not null,
    currency text not null,
    amount_cents bigint not null,
    vat_cents bigint not null,
    free_trial_minutes bigint not null,
    pack_minutes bigint not null,
    wallet_cents bigint not null,
    balance_after_cents bigint not null,
    charged_at_ms bigint not null
);

-- Answers to mutating calls sent with an `Idempotency-Key`, per account. A row without a
-- status is a request still running.
create table idempotency_keys (
    account_id text not null,
    key text not null,
    fingerprint text not null,
    status_code bigint,
    content_type text,
    body text,
    created_at_ms bigint not null,
    primary key (account_id, key)
);
create index idempotency_keys_by_age on idempotency_keys (created_at_ms);
