-- How many welcomes and reposts each session has spent on each platform. The budget checks of
-- every ingest batch read these counts; counting the rows (welcomes, session_reposts) instead
-- walks every row of the session, so a batch got slower as the session grew. The rows stay
-- the facts: the triggers below keep the tallies equal to them, whichever code path inserts or
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
)
GROUP BY chat_id, session_id, platform;

CREATE TRIGGER welcomes_tally_insert AFTER INSERT ON welcomes
BEGIN
    INSERT INTO session_tallies (chat_id, session_id, platform, welcomes)
    VALUES (NEW.chat_id, NEW.session_id, NEW.platform, 1)
    ON CONFLICT (chat_id, session_id, platform) DO UPDATE SET welcomes = welcomes + 1;
END;

CREATE TRIGGER welcomes_tally_delete AFTER DELETE ON welcomes
BEGIN
    UPDATE session_tallies SET welcomes = welcomes - 1
    WHERE chat_id = OLD.chat_id AND session_id = OLD.session_id AND platform = OLD.platform;
END;

CREATE TRIGGER session_reposts_tally_insert AFTER INSERT ON session_reposts
BEGIN
    INSERT INTO session_tallies (chat_id, session_id, platform, reposts)
    VALUES (NEW.chat_id, NEW.session_id, NEW.platform, 1)
    ON CONFLICT (chat_id, session_id, platform) DO UPDATE SET reposts = reposts + 1;
END;

CREATE TRIGGER session_reposts_tally_delete AFTER DELETE ON session_reposts
BEGIN
    UPDATE session_tallies SET reposts = reposts - 1
    WHERE chat_id = OLD.chat_id AND session_id = OLD.session_id AND platform = OLD.platform;
END;
