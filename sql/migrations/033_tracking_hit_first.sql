-- 033: a tracking hit is written before botcheck judges it
-- (relance_tracking_hit, then relance_tracking_judged: a scanner's
-- simultaneous clicks each see the ones before); the two functions they
-- replace go.
DROP FUNCTION IF EXISTS relance_tracking_facts(text, text, timestamptz, int);
DROP FUNCTION IF EXISTS relance_tracking_record(text, text, text, timestamptz, text, boolean, text, boolean);
-- The confirmation page reads its sequence's language from the stored
-- model (relance_public_page) rather than parsing the source each GET.
DROP FUNCTION IF EXISTS relance_public_message(text);
