-- Crews: where each crew account's van is, whether it takes jobs, and its batteries.
-- crew_id is a crew account's id (checked by the code that creates rows, not by a foreign
-- key, so accounts stay independent of dispatch).
-- tasks_held counts the crew's assigned and accepted tasks, so that "batteries to spare"
-- (batteries_aboard - tasks_held) is checked and claimed in one conditional update.
create table crews (
    crew_id text primary key,
    lat double precision,
    lon double precision,
    position_at_ms bigint,
    available boolean not null default false,
    batteries_aboard bigint not null check (batteries_aboard >= 0),
    tasks_held bigint not null default 0 check (tasks_held >= 0),
    updated_at_ms bigint not null
);

-- Battery-swap tasks. Times are those of the low-range point and of each step after it.
create table tasks (
    id text primary key,
    kind text not null check (kind in ('battery_swap')),
    scooter_id text not null,
    lat double precision not null,
    lon double precision not null,
    range_km double precision not null,
    status text not null check (status in ('open', 'assigned', 'accepted', 'done', 'cancelled')),
    crew_id text,
    low_at_ms bigint not null,
    created_at_ms bigint not null,
    assigned_at_ms bigint,
    first_assigned_at_ms bigint,
    accepted_at_ms bigint,
    completed_at_ms bigint,
    cancelled_at_ms bigint,
    swapped_range_km double precision
);

-- At most one unfinished task per scooter, whoever tries to create a second one.
create unique index tasks_one_active_per_scooter on tasks (scooter_id)
    where status in ('open', 'assigned', 'accepted');
create index tasks_by_crew on tasks (crew_id, status);
create index tasks_by_status on tasks (status, created_at_ms);
create index tasks_by_creation on tasks (created_at_ms);

-- Crews that declined a task or let it time out: it is not offered to them again.
create table task_declines (
    task_id text not null references tasks (id),
    crew_id text not null,
    reason text not null check (reason in ('declined', 'timed_out')),
    at_ms bigint not null,
    primary key (task_id, crew_id)
);

-- Hysteresis: a scooter is "armed" (may get a new task) until a task is created for it, and
-- armed again when its battery is swapped or its range rises above threshold + margin.
-- No row means armed.
create table dispatch_scooters (
    scooter_id text primary key,
    armed boolean not null,
    updated_at_ms bigint not null
);
