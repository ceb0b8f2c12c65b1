-- Indexes that keep the facilitator's live view flat as the archive grows: the approval and
-- unknown-outcome lists (actions by state, newest first) and the recent decisions (newest
-- update first) read a few rows from the end of an index instead of scanning every action
-- ever decided.

CREATE INDEX actions_by_state ON actions (chat_id, state, id);

CREATE INDEX actions_by_update ON actions (chat_id, updated_at, id);
