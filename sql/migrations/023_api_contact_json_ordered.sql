-- The API's contact documents become json (members in the contract's
-- order, id first) rather than jsonb (sorted by length): the two
-- functions whose return type changes are dropped here and created again
-- by sql/functions/api.sql.
DROP FUNCTION IF EXISTS relance_api_contacts_upsert(jsonb, boolean);
DROP FUNCTION IF EXISTS relance_api_contact_json(contacts);
