-- 018: enrollments keep one foreign key to their sequence, not two.
--
-- An enrollment references its sequence version (sequence_id, version),
-- and sequence_versions references sequences: the enrollment's own key
-- to sequences said nothing more, and PostgreSQL checked it row by row on
-- every insert (a set-based enroll of 200,000 contacts paid for it
-- 200,000 times).
ALTER TABLE enrollments DROP CONSTRAINT enrollments_sequence_id_fkey;
