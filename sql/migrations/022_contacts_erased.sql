-- A contact erased at a person's request (DELETE /v1/contacts/{id}): its
-- row stays, emptied, for the enrollments and messages that count in the
-- stats; erased_at says so and hides it from the API's reads.
ALTER TABLE contacts ADD COLUMN erased_at timestamptz;
