-- At most one live generation per collection. A switch retires the live generation and makes
-- the next one live in one transaction; this index makes the catalog refuse, rather than
-- record, a second live generation, whatever runs beside it.
CREATE UNIQUE INDEX generations_one_live ON generations (collection) WHERE state = 'live';
