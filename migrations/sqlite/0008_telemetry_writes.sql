-- In step with PostgreSQL's 0008, which drops the foreign key from telemetry to scooters
-- there. SQLite checks it with one lookup in the same B-tree page cache and no row lock,
-- and dropping it would mean rebuilding the table: it stays.
select 1;
