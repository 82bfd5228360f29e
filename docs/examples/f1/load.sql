-- Brings the Ergast Formula 1 CSV files (../shared/data/f1) into a DuckDB
-- database Ferry reads: one table per file, primary and foreign keys
-- declared, and on every event table a time column, marked
-- 'ferry:time_column', that comes from its race (qualifying: the day before).
--
-- It keeps RelBench's rel-f1 snapshot, so labels can be checked against
-- reference_tasks.py: races up to 2023 (the 2023 calendar included), event
-- rows of races held up to 2023-07-30; a race without a start time starts
-- at 00:00.
--
-- Some races (after the 2023 season) have 8 fields instead of 18: they are
-- padded with nulls and dropped by the year filter.
--
-- Run it with DuckDB's CLI:
--   duckdb f1.db -c "SET VARIABLE f1_data = '/path/to/f1'" -c ".read load.sql"
-- or with `make f1`, which writes .ferry-f1/f1.db.

CREATE TEMP MACRO f1_csv(name) AS getvariable('f1_data') || '/' || name || '.csv';
CREATE TEMP TABLE race_time AS
SELECT raceId, date + CAST(COALESCE(time, '00:00:00') AS TIME) AS race_at
FROM read_csv(f1_csv('races'), header = true, nullstr = '\N', delim = ',', quote = '"', escape = '"', auto_detect = false, null_padding = true,
              columns = {'raceId': 'INTEGER', 'year': 'INTEGER', 'round': 'INTEGER', 'circuitId': 'INTEGER', 'name': 'VARCHAR',
                         'date': 'DATE', 'time': 'VARCHAR', 'url': 'VARCHAR', 'fp1_date': 'VARCHAR', 'fp1_time': 'VARCHAR',
                         'fp2_date': 'VARCHAR', 'fp2_time': 'VARCHAR', 'fp3_date': 'VARCHAR', 'fp3_time': 'VARCHAR',
                         'quali_date': 'VARCHAR', 'quali_time': 'VARCHAR', 'sprint_date': 'VARCHAR', 'sprint_time': 'VARCHAR'})
WHERE year <= 2023;
-- Races whose events are in the snapshot.
CREATE TEMP TABLE held AS SELECT raceId, race_at FROM race_time WHERE race_at <= TIMESTAMP '2023-07-30 23:59:59';

CREATE TABLE circuits (
    circuitId INTEGER PRIMARY KEY, circuitRef VARCHAR, name VARCHAR, location VARCHAR, country VARCHAR,
    lat DOUBLE, lng DOUBLE, alt INTEGER, url VARCHAR);
INSERT INTO circuits SELECT * FROM read_csv(f1_csv('circuits'), header = true, nullstr = '\N', delim = ',', quote = '"', escape = '"', auto_detect = false,
    columns = {'circuitId': 'INTEGER', 'circuitRef': 'VARCHAR', 'name': 'VARCHAR', 'location': 'VARCHAR', 'country': 'VARCHAR',
               'lat': 'DOUBLE', 'lng': 'DOUBLE', 'alt': 'INTEGER', 'url': 'VARCHAR'});

CREATE TABLE status (statusId INTEGER PRIMARY KEY, status VARCHAR);
INSERT INTO status SELECT * FROM read_csv(f1_csv('status'), header = true, nullstr = '\N', delim = ',', quote = '"', escape = '"', auto_detect = false,
    columns = {'statusId': 'INTEGER', 'status': 'VARCHAR'});

CREATE TABLE drivers (
    driverId INTEGER PRIMARY KEY, driverRef VARCHAR, number INTEGER, code VARCHAR, forename VARCHAR, surname VARCHAR,
    dob DATE, nationality VARCHAR, url VARCHAR);
INSERT INTO drivers SELECT * FROM read_csv(f1_csv('drivers'), header = true, nullstr = '\N', delim = ',', quote = '"', escape = '"', auto_detect = false,
    columns = {'driverId': 'INTEGER', 'driverRef': 'VARCHAR', 'number': 'INTEGER', 'code': 'VARCHAR', 'forename': 'VARCHAR',
               'surname': 'VARCHAR', 'dob': 'DATE', 'nationality': 'VARCHAR', 'url': 'VARCHAR'});

CREATE TABLE constructors (constructorId INTEGER PRIMARY KEY, constructorRef VARCHAR, name VARCHAR, nationality VARCHAR, url VARCHAR);
INSERT INTO constructors SELECT * FROM read_csv(f1_csv('constructors'), header = true, nullstr = '\N', delim = ',', quote = '"', escape = '"', auto_detect = false,
    columns = {'constructorId': 'INTEGER', 'constructorRef': 'VARCHAR', 'name': 'VARCHAR', 'nationality': 'VARCHAR', 'url': 'VARCHAR'});

CREATE TABLE races (
    raceId INTEGER PRIMARY KEY, year INTEGER, round INTEGER, circuitId INTEGER REFERENCES circuits (circuitId),
    name VARCHAR, date TIMESTAMP, url VARCHAR);
INSERT INTO races SELECT r.raceId, r.year, r.round, r.circuitId, r.name, t.race_at, r.url
FROM read_csv(f1_csv('races'), header = true, nullstr = '\N', delim = ',', quote = '"', escape = '"', auto_detect = false, null_padding = true,
              columns = {'raceId': 'INTEGER', 'year': 'INTEGER', 'round': 'INTEGER', 'circuitId': 'INTEGER', 'name': 'VARCHAR',
                         'date': 'DATE', 'time': 'VARCHAR', 'url': 'VARCHAR', 'fp1_date': 'VARCHAR', 'fp1_time': 'VARCHAR',
                         'fp2_date': 'VARCHAR', 'fp2_time': 'VARCHAR', 'fp3_date': 'VARCHAR', 'fp3_time': 'VARCHAR',
                         'quali_date': 'VARCHAR', 'quali_time': 'VARCHAR', 'sprint_date': 'VARCHAR', 'sprint_time': 'VARCHAR'}) r
JOIN race_time t USING (raceId);
COMMENT ON COLUMN races.date IS 'ferry:time_column';

-- Event tables: the race's time (qualifying: a day earlier) as column date.
CREATE TABLE results (
    resultId INTEGER PRIMARY KEY, raceId INTEGER REFERENCES races (raceId), driverId INTEGER REFERENCES drivers (driverId),
    constructorId INTEGER REFERENCES constructors (constructorId), number INTEGER, grid INTEGER, position INTEGER,
    positionText VARCHAR, positionOrder INTEGER, points DOUBLE, laps INTEGER, time VARCHAR, milliseconds BIGINT,
    fastestLap INTEGER, rank INTEGER, fastestLapTime VARCHAR, fastestLapSpeed DOUBLE,
    statusId INTEGER REFERENCES status (statusId), date TIMESTAMP);
INSERT INTO results SELECT c.*, h.race_at FROM read_csv(f1_csv('results'), header = true, nullstr = '\N', delim = ',', quote = '"', escape = '"', auto_detect = false,
    columns = {'resultId': 'INTEGER', 'raceId': 'INTEGER', 'driverId': 'INTEGER', 'constructorId': 'INTEGER', 'number': 'INTEGER',
               'grid': 'INTEGER', 'position': 'INTEGER', 'positionText': 'VARCHAR', 'positionOrder': 'INTEGER', 'points': 'DOUBLE',
               'laps': 'INTEGER', 'time': 'VARCHAR', 'milliseconds': 'BIGINT', 'fastestLap': 'INTEGER', 'rank': 'INTEGER',
               'fastestLapTime': 'VARCHAR', 'fastestLapSpeed': 'DOUBLE', 'statusId': 'INTEGER'}) c
JOIN held h USING (raceId);
COMMENT ON COLUMN results.date IS 'ferry:time_column';

CREATE TABLE qualifying (
    qualifyId INTEGER PRIMARY KEY, raceId INTEGER REFERENCES races (raceId), driverId INTEGER REFERENCES drivers (driverId),
    constructorId INTEGER REFERENCES constructors (constructorId), number INTEGER, position INTEGER,
    q1 VARCHAR, q2 VARCHAR, q3 VARCHAR, date TIMESTAMP);
INSERT INTO qualifying SELECT c.*, h.race_at - INTERVAL 1 DAY FROM read_csv(f1_csv('qualifying'), header = true, nullstr = '\N', delim = ',', quote = '"', escape = '"', auto_detect = false,
    columns = {'qualifyId': 'INTEGER', 'raceId': 'INTEGER', 'driverId': 'INTEGER', 'constructorId': 'INTEGER', 'number': 'INTEGER',
               'position': 'INTEGER', 'q1': 'VARCHAR', 'q2': 'VARCHAR', 'q3': 'VARCHAR'}) c
JOIN held h USING (raceId);
COMMENT ON COLUMN qualifying.date IS 'ferry:time_column';

CREATE TABLE driver_standings (
    driverStandingsId INTEGER PRIMARY KEY, raceId INTEGER REFERENCES races (raceId), driverId INTEGER REFERENCES drivers (driverId),
    points DOUBLE, position INTEGER, positionText VARCHAR, wins INTEGER, date TIMESTAMP);
INSERT INTO driver_standings SELECT c.*, h.race_at FROM read_csv(f1_csv('driver_standings'), header = true, nullstr = '\N', delim = ',', quote = '"', escape = '"', auto_detect = false,
    columns = {'driverStandingsId': 'INTEGER', 'raceId': 'INTEGER', 'driverId': 'INTEGER', 'points': 'DOUBLE', 'position': 'INTEGER',
               'positionText': 'VARCHAR', 'wins': 'INTEGER'}) c
JOIN held h USING (raceId);
COMMENT ON COLUMN driver_standings.date IS 'ferry:time_column';

CREATE TABLE constructor_standings (
    constructorStandingsId INTEGER PRIMARY KEY, raceId INTEGER REFERENCES races (raceId),
    constructorId INTEGER REFERENCES constructors (constructorId), points DOUBLE, position INTEGER, positionText VARCHAR,
    wins INTEGER, date TIMESTAMP);
INSERT INTO constructor_standings SELECT c.*, h.race_at FROM read_csv(f1_csv('constructor_standings'), header = true, nullstr = '\N', delim = ',', quote = '"', escape = '"', auto_detect = false,
    columns = {'constructorStandingsId': 'INTEGER', 'raceId': 'INTEGER', 'constructorId': 'INTEGER', 'points': 'DOUBLE',
               'position': 'INTEGER', 'positionText': 'VARCHAR', 'wins': 'INTEGER'}) c
JOIN held h USING (raceId);
COMMENT ON COLUMN constructor_standings.date IS 'ferry:time_column';

CREATE TABLE constructor_results (
    constructorResultsId INTEGER PRIMARY KEY, raceId INTEGER REFERENCES races (raceId),
    constructorId INTEGER REFERENCES constructors (constructorId), points DOUBLE, status VARCHAR, date TIMESTAMP);
INSERT INTO constructor_results SELECT c.*, h.race_at FROM read_csv(f1_csv('constructor_results'), header = true, nullstr = '\N', delim = ',', quote = '"', escape = '"', auto_detect = false,
    columns = {'constructorResultsId': 'INTEGER', 'raceId': 'INTEGER', 'constructorId': 'INTEGER', 'points': 'DOUBLE',
               'status': 'VARCHAR'}) c
JOIN held h USING (raceId);
COMMENT ON COLUMN constructor_results.date IS 'ferry:time_column';

CREATE TABLE pit_stops (
    raceId INTEGER REFERENCES races (raceId), driverId INTEGER REFERENCES drivers (driverId), stop INTEGER, lap INTEGER,
    time VARCHAR, duration VARCHAR, milliseconds BIGINT, date TIMESTAMP, PRIMARY KEY (raceId, driverId, stop));
INSERT INTO pit_stops SELECT c.*, h.race_at FROM read_csv(f1_csv('pit_stops'), header = true, nullstr = '\N', delim = ',', quote = '"', escape = '"', auto_detect = false,
    columns = {'raceId': 'INTEGER', 'driverId': 'INTEGER', 'stop': 'INTEGER', 'lap': 'INTEGER', 'time': 'VARCHAR',
               'duration': 'VARCHAR', 'milliseconds': 'BIGINT'}) c
JOIN held h USING (raceId);
COMMENT ON COLUMN pit_stops.date IS 'ferry:time_column';

CREATE TABLE sprint_results (
    resultId INTEGER PRIMARY KEY, raceId INTEGER REFERENCES races (raceId), driverId INTEGER REFERENCES drivers (driverId),
    constructorId INTEGER REFERENCES constructors (constructorId), number INTEGER, grid INTEGER, position INTEGER,
    positionText VARCHAR, positionOrder INTEGER, points DOUBLE, laps INTEGER, time VARCHAR, milliseconds BIGINT,
    fastestLap INTEGER, fastestLapTime VARCHAR, statusId INTEGER REFERENCES status (statusId), rank INTEGER, date TIMESTAMP);
INSERT INTO sprint_results SELECT c.*, h.race_at FROM read_csv(f1_csv('sprint_results'), header = true, nullstr = '\N', delim = ',', quote = '"', escape = '"', auto_detect = false,
    columns = {'resultId': 'INTEGER', 'raceId': 'INTEGER', 'driverId': 'INTEGER', 'constructorId': 'INTEGER', 'number': 'INTEGER',
               'grid': 'INTEGER', 'position': 'INTEGER', 'positionText': 'VARCHAR', 'positionOrder': 'INTEGER', 'points': 'DOUBLE',
               'laps': 'INTEGER', 'time': 'VARCHAR', 'milliseconds': 'BIGINT', 'fastestLap': 'INTEGER', 'fastestLapTime': 'VARCHAR',
               'statusId': 'INTEGER', 'rank': 'INTEGER'}) c
JOIN held h USING (raceId);
COMMENT ON COLUMN sprint_results.date IS 'ferry:time_column';
