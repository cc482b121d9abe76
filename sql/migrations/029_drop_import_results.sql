-- 029: relance_contacts_import_results is gone: the API's upsert reads
-- the staging table itself, in one pass (sql/functions/api.sql). Only
-- SQL called it, and migrate replaces that caller in this transaction.
DROP FUNCTION IF EXISTS relance_contacts_import_results();
