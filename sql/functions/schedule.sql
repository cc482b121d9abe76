-- schedule: time-zone arithmetic for the scheduler (DESIGN.md, semantics 4).
--
-- When may a step go out? The previous step's send time plus the step's
-- wait, moved forward into the sequence's sending window, on an allowed
-- weekday, in the contact's IANA time zone, on PostgreSQL's time-zone
-- database. The scheduler, `relance next-send-time` and the tests all call
-- these functions, so the answer is computed in exactly one place.
--
-- Conventions shared by every function here:
-- - Time is always a parameter; nothing reads now() or the session's
--   TimeZone. PostgreSQL 15's `timestamptz + interval` uses the session's
--   TimeZone for the day and month parts of the interval, so calendar
--   arithmetic is done on local wall-clock timestamps,
--   ((t AT TIME ZONE zone) + i) AT TIME ZONE zone, and only intervals made
--   of hours and seconds are ever added to a timestamptz. That is why the
--   functions can be IMMUTABLE in the same sense as PostgreSQL's own
--   timezone(text, timestamptz): fixed for a given time-zone database.
-- - zone is an IANA name ('Europe/Paris'); an unknown one raises SQLSTATE
--   22023 (time zone "..." not recognized).
-- - A window is [win_start_min, win_end_min) in minutes after local
--   midnight, 0 <= start < end <= 1440 (1440 is 24:00, the next midnight).
-- - days is a weekday bitmask: mon=1 tue=2 wed=4 thu=8 fri=16 sat=32
--   sun=64 (so mon-fri = 31, sat+sun = 96, every day = 127).
-- - Bad arguments (an empty or out-of-range window, days outside 1..127,
--   a negative wait, r outside [0, 1)) raise SQLSTATE 22023: they are
--   programming errors, refused when a sequence is applied, and an error is
--   louder than a NULL that would silently never send.
--
-- Wall-clock times that do not exist or exist twice (DST):
-- - Plain conversion of a local time to an instant, as PostgreSQL does it
--   (used by relance_add_wait): a wall time inside a gap (clocks set
--   forward) is read with the offset before the change, i.e. moved forward
--   by the gap (2024-03-10 02:30 America/New_York -> 03:30 EDT); a wall time
--   inside a repeated hour (clocks set back) is read as its later occurrence
--   (2024-11-03 01:30 America/New_York -> 01:30 EST, 06:30Z). Whenever a wall
--   time is ambiguous or skipped, PostgreSQL takes the later candidate.
-- - Windows (relance_next_window, relance_window_jitter) are never allowed
--   to hold an instant whose local wall time is outside [start, end) or
--   whose local date is not an allowed weekday. On date D the window runs
--   from the LAST instant the wall clock reads D+start to the FIRST instant
--   it reads D+end (see relance_wall_instant): in a repeated hour it opens at
--   the second pass of its start and closes at the first pass of its end; a
--   start or end inside a gap is the instant of the jump (a 02:30 start on
--   the US spring-forward day opens at 03:00 EDT). A window wholly inside a
--   gap is empty that day. On every other day the window is exactly the
--   wall-clock window.

-- The instant at which zone's wall clock reaches the local time w.
-- Normally the one instant whose local time is w. When w occurs twice
-- (clocks set back), the first occurrence if first, else the last one.
-- When w does not occur (clocks set forward over it), the instant of the
-- jump: the first instant whose local time is later than w. Exact to the
-- second. Assumes at most one offset change in the 24 hours before the
-- answer (true of every zone in the IANA database since 1970).
CREATE OR REPLACE FUNCTION relance_wall_instant(w timestamp, zone text, first boolean)
RETURNS timestamptz LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    x timestamptz := w AT TIME ZONE zone;     -- PostgreSQL's reading: the later candidate
    lw timestamp := x AT TIME ZONE zone;
    before interval;
    after interval;
    early timestamptz;
    lo timestamptz;
    hi timestamptz;
    span bigint;
BEGIN
    IF lw = w THEN
        IF NOT first THEN
            RETURN x;
        END IF;
        -- An earlier reading exists only if the offset just dropped.
        before := ((x - interval '24 hours') AT TIME ZONE zone) - ((x - interval '24 hours') AT TIME ZONE 'UTC');
        after := lw - (x AT TIME ZONE 'UTC');
        IF before > after THEN
            early := (w - before) AT TIME ZONE 'UTC';
            IF (early AT TIME ZONE zone) = w THEN
                RETURN early;
            END IF;
        END IF;
        RETURN x;
    END IF;
    -- w is in a gap: x = w read with the offset before the jump, lw = w +
    -- the gap. The jump lies in (x - gap, x]; before it the clock reads less
    -- than w, from it on more. Bisect on whole seconds (about 12 steps for
    -- an hour; offsets and transitions are whole seconds).
    lo := x - make_interval(secs => extract(epoch FROM lw - w));
    hi := x;
    LOOP
        span := extract(epoch FROM hi - lo)::bigint;
        EXIT WHEN span <= 1;
        IF ((lo + make_interval(secs => span / 2)) AT TIME ZONE zone) >= w THEN
            hi := lo + make_interval(secs => span / 2);
        ELSE
            lo := lo + make_interval(secs => span / 2);
        END IF;
    END LOOP;
    RETURN hi;
END
$$;

-- Raises SQLSTATE 22023 unless [win_start_min, win_end_min) is a non-empty
-- window within one day and days a non-empty weekday mask (1..127); pass
-- days => 127 to check a window alone.
CREATE OR REPLACE FUNCTION relance_window_check(win_start_min int, win_end_min int, days int)
RETURNS void LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF win_start_min IS NULL OR win_end_min IS NULL OR win_start_min < 0 OR win_end_min > 1440
       OR win_start_min >= win_end_min THEN
        RAISE EXCEPTION 'sending window [%, %) minutes is empty or outside 0..1440', win_start_min, win_end_min
            USING ERRCODE = '22023';
    END IF;
    IF days IS NULL OR days < 1 OR days > 127 THEN
        RAISE EXCEPTION 'weekday mask % is empty or not in 1..127 (mon=1 ... sun=64)', days
            USING ERRCODE = '22023';
    END IF;
END
$$;

-- The local calendar date of t in zone: the account's day for daily caps.
CREATE OR REPLACE FUNCTION relance_local_day(t timestamptz, zone text)
RETURNS date LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT (t AT TIME ZONE zone)::date
$$;

-- t plus a step's wait. The calendar part applies first, in zone's wall
-- clock: wait_days local calendar days, then wait_business_days steps to
-- the next Monday-Friday date (from Friday 10:00, 1 business day is Monday
-- 10:00; from Saturday or Sunday, Monday), keeping the local wall time; the
-- result is read back as PostgreSQL reads a local time (a skipped wall time
-- moves forward by the gap, a repeated one is its later occurrence). Then
-- wait_seconds of elapsed time are added. With no calendar part t is not
-- converted at all, so elapsed waits are exact even in a repeated hour.
-- NULL waits count as 0; a NULL t or zone gives NULL; a negative wait
-- raises 22023. Days and business days may both be given (days first),
-- though the sequence language forbids it.
CREATE OR REPLACE FUNCTION relance_add_wait(t timestamptz, zone text, wait_seconds bigint, wait_days int,
                                 wait_business_days int)
RETURNS timestamptz LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    secs bigint := coalesce(wait_seconds, 0);
    ndays int := coalesce(wait_days, 0);
    nbiz int := coalesce(wait_business_days, 0);
    lt timestamp;
    dow int;
    step int;
BEGIN
    IF t IS NULL OR zone IS NULL THEN
        RETURN NULL;
    END IF;
    IF secs < 0 OR ndays < 0 OR nbiz < 0 THEN
        RAISE EXCEPTION 'negative wait (% s, % days, % business days)', secs, ndays, nbiz
            USING ERRCODE = '22023';
    END IF;
    IF ndays > 0 OR nbiz > 0 THEN
        lt := (t AT TIME ZONE zone) + make_interval(days => ndays);
        IF nbiz > 0 THEN
            dow := extract(isodow FROM lt)::int;   -- 1 = Monday ... 7 = Sunday
            -- From a weekend day the count is the same as from the Friday before.
            IF dow > 5 THEN
                lt := lt - make_interval(days => dow - 5);
                dow := 5;
            END IF;
            -- Whole weeks of 5 business days, then the rest, hopping one
            -- weekend if the rest runs past Friday.
            step := (nbiz / 5) * 7 + nbiz % 5;
            IF dow + nbiz % 5 > 5 THEN
                step := step + 2;
            END IF;
            lt := lt + make_interval(days => step);
        END IF;
        t := lt AT TIME ZONE zone;
    END IF;
    RETURN t + make_interval(secs => secs);
END
$$;

-- The first instant >= t inside a sending window: [start, end) local time
-- on a date whose weekday is in days, in zone (see the header for the days
-- when clocks change). t itself when t is inside one. NULL arguments give
-- NULL; a bad window or days = 0 raises 22023 (relance_window_check).
-- Cost: a bit test per day skipped and two relance_wall_instant calls per
-- allowed day looked at (about 8 microseconds a call in all). Usually
-- answered within 8 days; always within 15 (an allowed weekday recurs
-- after 7, and only a clock change can empty a window on one day, never
-- on the same weekday two weeks running).
CREATE OR REPLACE FUNCTION relance_next_window(t timestamptz, zone text, win_start_min int, win_end_min int, days int)
RETURNS timestamptz LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    d0 date := (t AT TIME ZONE zone)::date;
    d date;
    s timestamptz;
    e timestamptz;
BEGIN
    PERFORM relance_window_check(win_start_min, win_end_min, days);
    FOR i IN 0..14 LOOP
        d := d0 + i;
        CONTINUE WHEN days & (1 << (extract(isodow FROM d)::int - 1)) = 0;
        e := relance_wall_instant(d + make_interval(mins => win_end_min), zone, true);
        CONTINUE WHEN e <= t;
        s := relance_wall_instant(d + make_interval(mins => win_start_min), zone, false);
        CONTINUE WHEN s >= e;
        RETURN greatest(s, t);
    END LOOP;
    RAISE EXCEPTION 'no sending window within 15 days of % in %', t, zone USING ERRCODE = 'XX000';
END
$$;

-- True when t is inside a sending window (relance_next_window(t, ...) = t):
-- the check the sender repeats at send time.
CREATE OR REPLACE FUNCTION relance_in_window(t timestamptz, zone text, win_start_min int, win_end_min int, days int)
RETURNS boolean LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT relance_next_window(t, zone, win_start_min, win_end_min, days) = t
$$;

-- When a step would go out, before jitter: the first window instant at or
-- after prev + the wait. Same NULL and error rules as the two functions.
CREATE OR REPLACE FUNCTION relance_next_send_time(prev timestamptz, zone text, wait_seconds bigint, wait_days int,
                                       wait_business_days int, win_start_min int, win_end_min int, days int)
RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT relance_next_window(relance_add_wait(prev, zone, wait_seconds, wait_days, wait_business_days),
                               zone, win_start_min, win_end_min, days)
$$;

-- t (inside its window) delayed by floor(r * jitter_seconds) whole seconds,
-- but kept at least 1 s before the end of the window of t's local date:
-- the result is within [t, max(t, end - 1 s)], so jitter never pushes a send
-- out of its window. r is drawn by the caller once per (enrollment, step)
-- and stored, so the result never moves by itself; r must be in [0, 1) and
-- jitter_seconds >= 0 (else 22023); NULL r or jitter means no jitter. A t
-- that is not inside a window comes back unchanged or clamped the same
-- way; call relance_next_window first.
CREATE OR REPLACE FUNCTION relance_window_jitter(t timestamptz, zone text, win_start_min int, win_end_min int,
                                      jitter_seconds int, r double precision)
RETURNS timestamptz LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    e timestamptz;
BEGIN
    IF t IS NULL OR zone IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM relance_window_check(win_start_min, win_end_min, 127);
    IF r < 0 OR r >= 1 OR jitter_seconds < 0 THEN
        RAISE EXCEPTION 'jitter % s with r = % (want jitter >= 0 and 0 <= r < 1)', jitter_seconds, r
            USING ERRCODE = '22023';
    END IF;
    IF coalesce(jitter_seconds, 0) = 0 OR coalesce(r, 0) = 0 THEN
        RETURN t;
    END IF;
    e := relance_window_close(t, zone, win_end_min);
    RETURN relance_jitter_within(t, e, jitter_seconds, r);
END
$$;

-- The end of the window on t's local date in zone: what
-- relance_window_jitter keeps a send before. Apart so that a query over
-- many enrollments due at one instant per zone (enroll) computes it once
-- per zone, not once per row.
CREATE OR REPLACE FUNCTION relance_window_close(t timestamptz, zone text, win_end_min int)
RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT relance_wall_instant((t AT TIME ZONE zone)::date + make_interval(mins => win_end_min), zone, true)
$$;

-- relance_window_jitter's rule once the window's end (close) is known:
-- t delayed by floor(r * jitter_seconds) seconds, at most to 1 s before
-- close, never before t. No jitter (0 or NULL) or r = 0: t. Arguments are
-- not checked here: relance_window_jitter checks them, and enroll draws r
-- in [0, 1) and takes jitter_seconds from a linted sequence.
CREATE OR REPLACE FUNCTION relance_jitter_within(t timestamptz, close timestamptz, jitter_seconds int,
                                                 r double precision)
RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN t IS NULL OR coalesce(jitter_seconds, 0) = 0 OR coalesce(r, 0) = 0 THEN t
                ELSE greatest(t, least(t + make_interval(secs => floor(r * jitter_seconds)), close - interval '1 second'))
           END
$$;
