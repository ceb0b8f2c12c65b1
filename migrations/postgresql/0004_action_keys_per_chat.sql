-- Idempotency keys are unique per chat, not across the deployment: two chats with a session on
-- the same date and platform each get their own question:<date>:<n>:<platform>.

ALTER TABLE actions DROP CONSTRAINT actions_key_key;

ALTER TABLE actions ADD CONSTRAINT actions_chat_key UNIQUE (chat_id, key);
