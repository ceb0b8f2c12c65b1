-- How many welcomes and reposts each session has spent on each platform. The budget checks of
-- every ingest batch read these counts; counting the rows (welcomes, session_reposts) instead
-- walks every row of the session, so a batch got slower as the session grew. The rows stay
-- the facts: the trigger below keeps the tallies equal to them, whichever code path inserts or
-- deletes (the live hour, the second round, "forget me").

CREATE TABLE session_tallies (
    chat_id         TEXT NOT NULL,
    session_id      TEXT NOT NULL,
    platform        TEXT NOT NULL,
    welcomes        INTEGER NOT NULL DEFAULT 0,
    reposts         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (chat_id, session_id, platform)
);

INSERT INTO session_tallies (chat_id, session_id, platform, welcomes, reposts)
SELECT chat_id, session_id, platform, sum(w), sum(r) FROM (
    SELECT chat_id, session_id, platform, 1 AS w, 0 AS r FROM welcomes
    UNION ALL
    SELECT chat_id, session_id, platform, 0 AS w, 1 AS r FROM session_reposts
) AS spent
GROUP BY chat_id, session_id, platform;

CREATE FUNCTION mhchat_session_tally() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    w INTEGER := CASE WHEN TG_TABLE_NAME = 'welcomes' THEN 1 ELSE 0 END;
    r INTEGER := CASE WHEN TG_TABLE_NAME = 'session_reposts' THEN 1 ELSE 0 END;
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO session_tallies AS t (chat_id, session_id, platform, welcomes, reposts)
        VALUES (NEW.chat_id, NEW.session_id, NEW.platform, w, r)
        ON CONFLICT (chat_id, session_id, platform)
        DO UPDATE SET welcomes = t.welcomes + w, reposts = t.reposts + r;
        RETURN NEW;
    END IF;
    UPDATE session_tallies SET welcomes = welcomes - w, reposts = reposts - r
    WHERE chat_id = OLD.chat_id AND session_id = OLD.session_id AND platform = OLD.platform;
    RETURN OLD;
END;
$$;

CREATE TRIGGER welcomes_tally AFTER INSERT OR DELETE ON welcomes
FOR EACH ROW EXECUTE FUNCTION mhchat_session_tally();

CREATE TRIGGER session_reposts_tally AFTER INSERT OR DELETE ON session_reposts
FOR EACH ROW EXECUTE FUNCTION mhchat_session_tally();
