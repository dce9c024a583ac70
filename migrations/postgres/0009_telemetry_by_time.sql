-- Telemetry is deleted past its retention scooter by scooter, through the primary key
-- (scooter, time), so the index of every point by time alone is not needed: it cost an
-- extra index entry per point stored (about a quarter of a batch's insert, measured with
-- pgbench).
drop index telemetry_by_time;
