-- As on PostgreSQL: telemetry is deleted past its retention scooter by scooter, through the
-- primary key (scooter, time), so the index of every point by time alone is not needed.
drop index telemetry_by_time;
