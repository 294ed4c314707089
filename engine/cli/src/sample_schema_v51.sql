-- thrum v0.10.6's database schema (internal/schema/schema.go at tag v0.10.6: CurrentVersion 51),
-- the tables and indexes of a fresh thrum database, transcribed as SQL so that the sample
-- workspaces of the demo, the tests and the benchmark have a messages.db of exactly thrum's
-- shape. A fixture of thrum's file format, not code: regenerate it from a newer tag when the
-- layout table (src/layout.rs) moves to a newer thrum.
CREATE TABLE IF NOT EXISTS messages (
			message_id   TEXT PRIMARY KEY,
			thread_id    TEXT,
			agent_id     TEXT NOT NULL,
			session_id   TEXT NOT NULL,
			created_at   TEXT NOT NULL,
			updated_at   TEXT,
			body_format  TEXT NOT NULL,
			body_content TEXT NOT NULL,
			body_structured TEXT,
			deleted      INTEGER DEFAULT 0,
			deleted_at   TEXT,
			delete_reason TEXT,
			authored_by  TEXT,
			disclosed    INTEGER DEFAULT 0,
			pending_route_resolution INTEGER NOT NULL DEFAULT 0,
			visibility_class TEXT NOT NULL DEFAULT 'targeted',
			retarget_fill_order TEXT,
			priority TEXT NOT NULL DEFAULT ''
		);
CREATE TABLE IF NOT EXISTS message_scopes (
			message_id  TEXT NOT NULL,
			scope_type  TEXT NOT NULL,
			scope_value TEXT NOT NULL,
			PRIMARY KEY (message_id, scope_type, scope_value)
		);
CREATE TABLE IF NOT EXISTS message_refs (
			message_id TEXT NOT NULL,
			ref_type   TEXT NOT NULL,
			ref_value  TEXT NOT NULL,
			PRIMARY KEY (message_id, ref_type, ref_value)
		);
CREATE TABLE IF NOT EXISTS threads (
			thread_id  TEXT PRIMARY KEY,
			title      TEXT,
			created_at TEXT NOT NULL,
			created_by TEXT NOT NULL
		);
CREATE TABLE IF NOT EXISTS agents (
			agent_id                 TEXT PRIMARY KEY,
			kind                     TEXT NOT NULL,
			role                     TEXT NOT NULL,
			module                   TEXT NOT NULL,
			display                  TEXT NOT NULL DEFAULT '',
			hostname                 TEXT NOT NULL DEFAULT '',
			agent_pid                INTEGER NOT NULL DEFAULT 0,
			registered_at            TEXT NOT NULL,
			last_seen_at             TEXT NOT NULL DEFAULT '',
			origin_daemon            TEXT NOT NULL DEFAULT '',
			mode                     TEXT NOT NULL DEFAULT 'persistent',
			identity                 TEXT NOT NULL DEFAULT 'long_lived',
			auto_respawn_enabled     INTEGER NOT NULL DEFAULT 0,
			auto_respawn_disabled_at INTEGER,
			state_md_parse_failed_at INTEGER,
			last_pane_alive_at       INTEGER,
			agent_pid_start_time     TEXT NOT NULL DEFAULT '',
			phase                    TEXT NOT NULL DEFAULT 'active'
		);
CREATE TABLE IF NOT EXISTS sessions (
			session_id   TEXT PRIMARY KEY,
			agent_id     TEXT NOT NULL,
			started_at   TEXT NOT NULL,
			ended_at     TEXT,
			end_reason   TEXT,
			last_seen_at TEXT NOT NULL
		);
CREATE TABLE IF NOT EXISTS subscriptions (
			id           INTEGER PRIMARY KEY AUTOINCREMENT,
			session_id   TEXT NOT NULL,
			scope_type   TEXT,
			scope_value  TEXT,
			mention_role TEXT,
			created_at   TEXT NOT NULL,
			UNIQUE(session_id, scope_type, scope_value, mention_role)
		);
CREATE TABLE IF NOT EXISTS message_reads (
			message_id TEXT NOT NULL,
			session_id TEXT NOT NULL,
			agent_id   TEXT NOT NULL,
			read_at    TEXT NOT NULL,
			PRIMARY KEY (message_id, session_id),
			FOREIGN KEY (message_id) REFERENCES messages(message_id) ON DELETE CASCADE
		);
CREATE TABLE IF NOT EXISTS message_deliveries (
			message_id          TEXT NOT NULL,
			recipient_agent_id  TEXT NOT NULL,
			delivered_at        TEXT NOT NULL,
			seen_at             TEXT,
			read_at             TEXT,
			addressed_via       TEXT NOT NULL DEFAULT 'unattributed',
			PRIMARY KEY (message_id, recipient_agent_id),
			FOREIGN KEY (message_id) REFERENCES messages(message_id) ON DELETE CASCADE
		);
CREATE TABLE IF NOT EXISTS message_edits (
			id             INTEGER PRIMARY KEY AUTOINCREMENT,
			message_id     TEXT NOT NULL,
			edited_at      TEXT NOT NULL,
			edited_by      TEXT NOT NULL,
			old_content    TEXT,
			new_content    TEXT,
			old_structured TEXT,
			new_structured TEXT
		);
CREATE TABLE IF NOT EXISTS session_scopes (
			session_id  TEXT NOT NULL,
			scope_type  TEXT NOT NULL,
			scope_value TEXT NOT NULL,
			added_at    TEXT NOT NULL,
			PRIMARY KEY (session_id, scope_type, scope_value)
		);
CREATE TABLE IF NOT EXISTS session_refs (
			session_id TEXT NOT NULL,
			ref_type   TEXT NOT NULL,
			ref_value  TEXT NOT NULL,
			added_at   TEXT NOT NULL,
			PRIMARY KEY (session_id, ref_type, ref_value)
		);
CREATE TABLE IF NOT EXISTS groups (
			group_id    TEXT PRIMARY KEY,
			name        TEXT UNIQUE NOT NULL,
			description TEXT,
			created_at  TEXT NOT NULL,
			created_by  TEXT NOT NULL,
			updated_at  TEXT,
			metadata    TEXT
		);
CREATE TABLE IF NOT EXISTS group_members (
			id           INTEGER PRIMARY KEY AUTOINCREMENT,
			group_id     TEXT NOT NULL,
			member_type  TEXT NOT NULL,
			member_value TEXT NOT NULL,
			added_at     TEXT NOT NULL,
			added_by     TEXT,
			UNIQUE(group_id, member_type, member_value),
			FOREIGN KEY (group_id) REFERENCES groups(group_id) ON DELETE CASCADE
		);
CREATE TABLE IF NOT EXISTS events (
			event_id TEXT PRIMARY KEY,
			sequence INTEGER UNIQUE NOT NULL,
			type TEXT NOT NULL,
			timestamp TEXT NOT NULL,
			origin_daemon TEXT NOT NULL,
			event_json TEXT NOT NULL
		);
CREATE TABLE IF NOT EXISTS sync_checkpoints (
			peer_daemon_id TEXT PRIMARY KEY,
			last_synced_sequence INTEGER NOT NULL DEFAULT 0,
			last_sync_timestamp INTEGER NOT NULL,
			sync_status TEXT NOT NULL DEFAULT 'idle'
		);
CREATE TABLE IF NOT EXISTS purge_metadata (
			key   TEXT PRIMARY KEY,
			value TEXT NOT NULL
		);
CREATE TABLE IF NOT EXISTS agent_work_contexts (
			session_id        TEXT PRIMARY KEY,
			agent_id          TEXT NOT NULL,
			branch            TEXT,
			worktree_path     TEXT,
			unmerged_commits  TEXT,
			uncommitted_files TEXT,
			changed_files     TEXT,
			file_changes      TEXT DEFAULT '[]',
			git_updated_at    TEXT,
			current_task      TEXT,
			task_updated_at   TEXT,
			intent            TEXT,
			intent_updated_at TEXT,
			FOREIGN KEY (session_id) REFERENCES sessions(session_id) ON DELETE CASCADE
		);
CREATE TABLE IF NOT EXISTS command_queue (
			command_id         TEXT PRIMARY KEY,
			session_name       TEXT NOT NULL,
			requester_agent    TEXT NOT NULL,
			command_text       TEXT NOT NULL,
			state              TEXT NOT NULL DEFAULT 'queued',
			timeout_ms         INTEGER NOT NULL DEFAULT 120000,
			silence_ms         INTEGER NOT NULL DEFAULT 5000,
			notify_on_complete INTEGER NOT NULL DEFAULT 1,
			submitted_at       TEXT NOT NULL,
			sent_at            TEXT,
			completed_at       TEXT,
			captured_output    TEXT,
			position           INTEGER NOT NULL DEFAULT 0
		);
CREATE TABLE IF NOT EXISTS monitors (
			id                TEXT PRIMARY KEY,
			name              TEXT NOT NULL UNIQUE,
			argv              TEXT NOT NULL,
			match_pattern     TEXT NOT NULL,
			target            TEXT NOT NULL,
			cwd               TEXT NOT NULL,
			env               TEXT NOT NULL,
			debounce_seconds  INTEGER NOT NULL,
			created_at        TEXT NOT NULL,
			updated_at        TEXT NOT NULL,
			status            TEXT NOT NULL,
			last_exit_code    INTEGER,
			last_exit_at      TEXT,
			pid               INTEGER,
			schedule          TEXT NOT NULL DEFAULT ''
		);
CREATE TABLE IF NOT EXISTS permission_nudges (
			message_id       TEXT PRIMARY KEY,
			session          TEXT NOT NULL,
			tmux_target      TEXT NOT NULL,
			agent_name       TEXT NOT NULL,
			pattern_key      TEXT NOT NULL,
			approve_key      TEXT NOT NULL,
			deny_key         TEXT,
			first_detected   TIMESTAMP NOT NULL,
			last_nudge_at    TIMESTAMP NOT NULL,
			nudge_count      INTEGER NOT NULL,
			last_pane_hash   BLOB NOT NULL,
			expires_at       TIMESTAMP NOT NULL,
			prompt_fingerprint TEXT NOT NULL DEFAULT ''
		);
CREATE TABLE IF NOT EXISTS daemon_identity (
			daemon_id      TEXT PRIMARY KEY,
			repo_name      TEXT NOT NULL,
			hostname       TEXT NOT NULL,
			repo_path      TEXT NOT NULL,
			git_origin_url TEXT,
			init_at        TEXT NOT NULL,
			updated_at     TEXT NOT NULL
		);
CREATE TABLE IF NOT EXISTS telegram_msg_map (
			external_key TEXT PRIMARY KEY,
			thrum_msg_id TEXT NOT NULL,
			created_at   INTEGER NOT NULL
		);
CREATE TABLE IF NOT EXISTS scheduler_job_state (
			job_id                TEXT PRIMARY KEY,
			job_generation        INTEGER NOT NULL DEFAULT 1,
			current_state         TEXT    NOT NULL,
			current_stage         TEXT,
			stage_entered_at      INTEGER,
			last_run_id           TEXT,
			last_fired_at         INTEGER,
			last_completed_at     INTEGER,
			last_completion_state TEXT,
			last_error            TEXT,
			next_scheduled_at     INTEGER,
			consecutive_failures  INTEGER NOT NULL DEFAULT 0,
			escalation_sent       INTEGER NOT NULL DEFAULT 0,
			total_runs            INTEGER NOT NULL DEFAULT 0,
			created_at            INTEGER NOT NULL,
			updated_at            INTEGER NOT NULL
		);
CREATE TABLE IF NOT EXISTS scheduler_job_events (
			id          INTEGER PRIMARY KEY AUTOINCREMENT,
			job_id      TEXT    NOT NULL,
			run_id      TEXT    NOT NULL,
			event_time  INTEGER NOT NULL,
			from_state  TEXT,
			to_state    TEXT    NOT NULL,
			reason      TEXT,
			details     TEXT
		);
CREATE TABLE IF NOT EXISTS agent_lifecycle_events (
	id                INTEGER PRIMARY KEY AUTOINCREMENT,
	agent_name        TEXT    NOT NULL,
	event_kind        TEXT    NOT NULL CHECK (event_kind IN (
		'respawn_fired','respawn_skipped_loopguard','crash_detected',
		'state_md_parse_failed','state_md_ack_cleared','respawn_ack_cleared',
		'reconcile_worktree_discrepancy'
	)),
	event_time        INTEGER NOT NULL,
	detection_method  TEXT CHECK (
		detection_method IS NULL OR detection_method IN
			('health_check_tick', 'restart_reconciliation', 'rpc_observation')
	),
	reason            TEXT,
	details           TEXT
);
CREATE TABLE IF NOT EXISTS reminders (
			id                  TEXT    PRIMARY KEY,
			source              TEXT    NOT NULL,
			source_agent        TEXT,
			trigger_kind        TEXT    NOT NULL,
			trigger_at          INTEGER,
			trigger_meta        TEXT,
			target_agent        TEXT,
			target_chain        TEXT,
			body                TEXT,
			raised_at           INTEGER NOT NULL,
			next_reminder_at    INTEGER,
			last_fired_at       INTEGER,
			state               TEXT    NOT NULL,
			pane_snapshot       TEXT,
			defer_history       TEXT    NOT NULL DEFAULT '[]',
			cleared_at          INTEGER,
			cancelled_at        INTEGER,
			created_at          INTEGER NOT NULL,
			updated_at          INTEGER NOT NULL
		);
CREATE TABLE IF NOT EXISTS email_msg_seen (
			message_id      TEXT    PRIMARY KEY,
			from_daemon_id  TEXT,
			nonce           TEXT,
			processed_at    INTEGER NOT NULL
		);
CREATE TABLE IF NOT EXISTS email_outbound_queue (
			id              INTEGER PRIMARY KEY AUTOINCREMENT,
			from_agent      TEXT    NOT NULL,
			to_address      TEXT    NOT NULL,
			subject         TEXT,
			body            TEXT    NOT NULL,
			headers_json    TEXT    NOT NULL DEFAULT '{}',
			attempt_count   INTEGER NOT NULL DEFAULT 0,
			next_retry_at   INTEGER NOT NULL,
			last_error      TEXT,
			status          TEXT    NOT NULL,
			enqueued_at     INTEGER NOT NULL,
			updated_at      INTEGER NOT NULL
		);
CREATE TABLE IF NOT EXISTS email_peer_rate_state (
			peer_key            TEXT    PRIMARY KEY,
			window_start_at     INTEGER NOT NULL,
			inbound_count       INTEGER NOT NULL DEFAULT 0,
			outbound_count      INTEGER NOT NULL DEFAULT 0,
			paused_at           INTEGER
		);
CREATE TABLE IF NOT EXISTS memories (
			record_id   TEXT PRIMARY KEY,
			name        TEXT NOT NULL,
			description TEXT NOT NULL,
			body        TEXT NOT NULL,
			type        TEXT NOT NULL,
			author      TEXT NOT NULL,
			created_at  TEXT NOT NULL,
			updated_at  TEXT NOT NULL,
			deleted     INTEGER NOT NULL DEFAULT 0
		);
CREATE TABLE IF NOT EXISTS memory_scopes (
			record_id   TEXT NOT NULL,
			scope_type  TEXT NOT NULL,
			scope_value TEXT NOT NULL,
			PRIMARY KEY (record_id, scope_type, scope_value),
			FOREIGN KEY (record_id) REFERENCES memories(record_id) ON DELETE CASCADE
		);
CREATE TABLE IF NOT EXISTS agent_api_error_remediation (
	agent_name              TEXT PRIMARY KEY,
	last_nudge_at           INTEGER,
	consecutive_nudge_count INTEGER NOT NULL DEFAULT 0,
	last_error              TEXT,
	escalation_sent         INTEGER NOT NULL DEFAULT 0,
	updated_at              INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS memory_record (
			id                TEXT PRIMARY KEY,
			kind              TEXT NOT NULL,
			subkind           TEXT,
			title             TEXT NOT NULL,
			body_oneline      TEXT NOT NULL,
			body_short        TEXT,
			body_full         TEXT,
			agent_id          TEXT NOT NULL,
			created_at        TIMESTAMP NOT NULL,
			updated_at        TIMESTAMP NOT NULL,
			status            TEXT NOT NULL DEFAULT 'active',
			scope             TEXT NOT NULL DEFAULT 'project',
			parent_id         TEXT,
			source_session_id TEXT,
			metadata          TEXT,
			created_by        TEXT NOT NULL,
			last_edited_by    TEXT NOT NULL
		);
CREATE TABLE IF NOT EXISTS memory_tag (
			memory_id  TEXT NOT NULL,
			tag        TEXT NOT NULL,
			PRIMARY KEY (memory_id, tag),
			FOREIGN KEY (memory_id) REFERENCES memory_record(id) ON DELETE CASCADE
		);
CREATE TABLE IF NOT EXISTS memory_edge (
			from_id    TEXT NOT NULL,
			edge_kind  TEXT NOT NULL,
			to_id      TEXT NOT NULL,
			created_at TIMESTAMP NOT NULL,
			PRIMARY KEY (from_id, edge_kind, to_id),
			FOREIGN KEY (from_id) REFERENCES memory_record(id) ON DELETE CASCADE,
			FOREIGN KEY (to_id) REFERENCES memory_record(id) ON DELETE CASCADE
		);
CREATE VIRTUAL TABLE IF NOT EXISTS memory_fts USING fts5(
			memory_id UNINDEXED,
			title, body_oneline, body_short, body_full
		);
CREATE TABLE IF NOT EXISTS memory_embeddings (
			memory_id    TEXT NOT NULL,
			zoom_level   TEXT NOT NULL,
			model        TEXT NOT NULL,
			embedded_at  TIMESTAMP NOT NULL,
			embed_status TEXT NOT NULL,
			vec          BLOB,
			PRIMARY KEY (memory_id, zoom_level, model),
			FOREIGN KEY (memory_id) REFERENCES memory_record(id) ON DELETE CASCADE
		);
CREATE TABLE IF NOT EXISTS memory_embed_queue (
			memory_id   TEXT NOT NULL,
			zoom_level  TEXT NOT NULL,
			enqueued_at TIMESTAMP NOT NULL,
			retry_count INTEGER NOT NULL DEFAULT 0,
			last_error  TEXT,
			PRIMARY KEY (memory_id, zoom_level)
		);
CREATE TABLE IF NOT EXISTS alert_deliveries (
			recipient_agent_id       TEXT NOT NULL,
			dedup_key                TEXT NOT NULL,
			suppressed_by_message_id TEXT NOT NULL,
			expires_at               TEXT NOT NULL,
			created_at               TEXT NOT NULL,
			PRIMARY KEY (recipient_agent_id, dedup_key)
		);
CREATE TABLE IF NOT EXISTS telegram_outbound_queue (
			id               INTEGER PRIMARY KEY AUTOINCREMENT,
			chat_id          INTEGER NOT NULL,
			content          TEXT    NOT NULL,
			reply_to_tele_id INTEGER,
			thrum_msg_id     TEXT    NOT NULL,
			attempt_count    INTEGER NOT NULL DEFAULT 0,
			next_retry_at    INTEGER NOT NULL,
			last_error       TEXT,
			status           TEXT    NOT NULL,
			enqueued_at      INTEGER NOT NULL,
			updated_at       INTEGER NOT NULL
		);
CREATE TABLE IF NOT EXISTS node (
			id               TEXT PRIMARY KEY,
			kind             TEXT NOT NULL,
			title            TEXT NOT NULL,
			status           TEXT NOT NULL DEFAULT 'open',
			raw_status       TEXT NOT NULL DEFAULT 'open',
			priority         INTEGER,
			effective_labels TEXT NOT NULL DEFAULT '[]',
			metadata         TEXT,
			owner            TEXT,
			is_blocked       INTEGER NOT NULL DEFAULT 0,
			created_at       TEXT NOT NULL,
			updated_at       TEXT NOT NULL,
			created_by       TEXT NOT NULL
		);
CREATE TABLE IF NOT EXISTS node_label (
			node_id  TEXT NOT NULL,
			label    TEXT NOT NULL,
			PRIMARY KEY (node_id, label),
			FOREIGN KEY (node_id) REFERENCES node(id) ON DELETE CASCADE
		);
CREATE TABLE IF NOT EXISTS edge (
			from_id    TEXT NOT NULL,
			type       TEXT NOT NULL,
			to_id      TEXT NOT NULL,
			created_at TEXT NOT NULL,
			created_by TEXT NOT NULL,
			metadata   TEXT,
			PRIMARY KEY (from_id, type, to_id),
			FOREIGN KEY (from_id) REFERENCES node(id) ON DELETE CASCADE,
			FOREIGN KEY (to_id) REFERENCES node(id) ON DELETE CASCADE
		);
CREATE TABLE IF NOT EXISTS node_comment (
			comment_id TEXT PRIMARY KEY,
			node_id    TEXT NOT NULL,
			author     TEXT NOT NULL,
			body       TEXT NOT NULL,
			created_at TEXT NOT NULL,
			FOREIGN KEY (node_id) REFERENCES node(id) ON DELETE CASCADE
		);
CREATE TABLE IF NOT EXISTS graph_blocked (
			node_id     TEXT PRIMARY KEY,
			blocked_by  TEXT NOT NULL DEFAULT '[]',
			computed_at TEXT NOT NULL
		);
CREATE TABLE IF NOT EXISTS memory_satellite (
			node_id           TEXT PRIMARY KEY REFERENCES node(id) ON DELETE CASCADE,
			body_oneline      TEXT NOT NULL DEFAULT '',
			body_short        TEXT,
			body_full         TEXT,
			scope             TEXT NOT NULL DEFAULT 'project',
			source_session_id TEXT,
			agent_id          TEXT NOT NULL DEFAULT '',
			kind              TEXT NOT NULL DEFAULT '',
			subkind           TEXT NOT NULL DEFAULT '',
			last_edited_by    TEXT NOT NULL DEFAULT ''
		);
CREATE INDEX IF NOT EXISTS idx_messages_thread ON messages(thread_id);
CREATE INDEX IF NOT EXISTS idx_messages_time_id ON messages(created_at, message_id);
CREATE INDEX IF NOT EXISTS idx_messages_visibility ON messages(visibility_class, created_at) WHERE visibility_class != 'targeted';
CREATE INDEX IF NOT EXISTS idx_messages_agent ON messages(agent_id);
CREATE INDEX IF NOT EXISTS idx_messages_session ON messages(session_id);
CREATE INDEX IF NOT EXISTS idx_messages_not_deleted ON messages(deleted) WHERE deleted = 0;
CREATE INDEX IF NOT EXISTS idx_scopes_lookup ON message_scopes(scope_type, scope_value);
CREATE INDEX IF NOT EXISTS idx_refs_lookup ON message_refs(ref_type, ref_value);
CREATE INDEX IF NOT EXISTS idx_sessions_agent ON sessions(agent_id, started_at);
CREATE INDEX IF NOT EXISTS idx_subscriptions_session ON subscriptions(session_id);
CREATE INDEX IF NOT EXISTS idx_subscriptions_scope ON subscriptions(scope_type, scope_value);
CREATE INDEX IF NOT EXISTS idx_subscriptions_mention ON subscriptions(mention_role);
CREATE INDEX IF NOT EXISTS idx_edits_message ON message_edits(message_id, edited_at);
CREATE INDEX IF NOT EXISTS idx_session_scopes_lookup ON session_scopes(scope_type, scope_value);
CREATE INDEX IF NOT EXISTS idx_session_refs_lookup ON session_refs(ref_type, ref_value);
CREATE INDEX IF NOT EXISTS idx_message_reads_agent ON message_reads(agent_id, message_id);
CREATE INDEX IF NOT EXISTS idx_message_reads_message ON message_reads(message_id);
CREATE INDEX IF NOT EXISTS idx_message_deliveries_recipient ON message_deliveries(recipient_agent_id, message_id);
CREATE INDEX IF NOT EXISTS idx_message_deliveries_read ON message_deliveries(recipient_agent_id, read_at);
CREATE INDEX IF NOT EXISTS idx_groups_name ON groups(name);
CREATE INDEX IF NOT EXISTS idx_group_members_group ON group_members(group_id);
CREATE INDEX IF NOT EXISTS idx_group_members_lookup ON group_members(member_type, member_value);
CREATE INDEX IF NOT EXISTS idx_events_sequence ON events(sequence);
CREATE INDEX IF NOT EXISTS idx_events_type ON events(type);
CREATE INDEX IF NOT EXISTS idx_events_origin ON events(origin_daemon);
CREATE INDEX IF NOT EXISTS idx_events_timestamp ON events(timestamp);
CREATE INDEX IF NOT EXISTS idx_work_contexts_agent ON agent_work_contexts(agent_id);
CREATE INDEX IF NOT EXISTS idx_work_contexts_branch ON agent_work_contexts(branch);
CREATE INDEX IF NOT EXISTS idx_queue_session_state ON command_queue(session_name, state);
CREATE INDEX IF NOT EXISTS idx_monitors_status ON monitors(status);
CREATE INDEX IF NOT EXISTS idx_permission_nudges_session ON permission_nudges(session);
CREATE INDEX IF NOT EXISTS idx_permission_nudges_expires ON permission_nudges(expires_at);
CREATE INDEX IF NOT EXISTS idx_telegram_msg_map_thrum ON telegram_msg_map(thrum_msg_id);
CREATE INDEX IF NOT EXISTS idx_scheduler_state_next ON scheduler_job_state(next_scheduled_at);
CREATE INDEX IF NOT EXISTS idx_scheduler_events_job_time ON scheduler_job_events(job_id, event_time);
CREATE INDEX IF NOT EXISTS idx_scheduler_events_run ON scheduler_job_events(run_id);
CREATE INDEX IF NOT EXISTS idx_agent_lifecycle_agent_time ON agent_lifecycle_events(agent_name, event_time);
CREATE INDEX IF NOT EXISTS idx_agent_lifecycle_kind ON agent_lifecycle_events(event_kind, event_time);
CREATE INDEX IF NOT EXISTS idx_reminders_next ON reminders(next_reminder_at) WHERE state = 'open';
CREATE INDEX IF NOT EXISTS idx_reminders_state ON reminders(state);
CREATE INDEX IF NOT EXISTS idx_reminders_target ON reminders(target_agent) WHERE state = 'open';
CREATE INDEX IF NOT EXISTS idx_reminders_source_kind ON reminders(source, trigger_kind);
CREATE INDEX IF NOT EXISTS idx_email_msg_seen_proc ON email_msg_seen(processed_at);
CREATE INDEX IF NOT EXISTS idx_email_queue_next ON email_outbound_queue(next_retry_at, status);
CREATE INDEX IF NOT EXISTS idx_peer_rate_paused ON email_peer_rate_state(paused_at) WHERE paused_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_memories_name ON memories(name);
CREATE INDEX IF NOT EXISTS idx_memories_author ON memories(author);
CREATE INDEX IF NOT EXISTS idx_memories_type ON memories(type);
CREATE INDEX IF NOT EXISTS idx_memories_not_deleted ON memories(deleted) WHERE deleted = 0;
CREATE INDEX IF NOT EXISTS idx_memories_updated_at ON memories(updated_at);
CREATE INDEX IF NOT EXISTS idx_memory_scopes_lookup ON memory_scopes(scope_type, scope_value);
CREATE INDEX IF NOT EXISTS idx_memory_kind ON memory_record(kind);
CREATE INDEX IF NOT EXISTS idx_memory_agent ON memory_record(agent_id);
CREATE INDEX IF NOT EXISTS idx_memory_created ON memory_record(created_at);
CREATE INDEX IF NOT EXISTS idx_memory_updated ON memory_record(updated_at);
CREATE INDEX IF NOT EXISTS idx_memory_status ON memory_record(status);
CREATE INDEX IF NOT EXISTS idx_memory_scope ON memory_record(scope);
CREATE INDEX IF NOT EXISTS idx_memory_tag_tag ON memory_tag(tag);
CREATE INDEX IF NOT EXISTS idx_memory_edge_to ON memory_edge(to_id, edge_kind);
CREATE INDEX IF NOT EXISTS idx_memory_edge_kind ON memory_edge(edge_kind);
CREATE INDEX IF NOT EXISTS idx_memory_embed_status ON memory_embeddings(embed_status);
CREATE INDEX IF NOT EXISTS idx_alert_deliveries_expires ON alert_deliveries(recipient_agent_id, expires_at);
CREATE INDEX IF NOT EXISTS idx_deliveries_recipient_via ON message_deliveries(recipient_agent_id, addressed_via);
CREATE INDEX IF NOT EXISTS idx_tg_queue_next ON telegram_outbound_queue(next_retry_at, status);
CREATE INDEX IF NOT EXISTS idx_node_ready ON node(kind, status, is_blocked);
CREATE INDEX IF NOT EXISTS idx_node_kind ON node(kind, status);
CREATE INDEX IF NOT EXISTS idx_edge_to ON edge(to_id, type);
CREATE INDEX IF NOT EXISTS idx_node_label_label ON node_label(label, node_id);
CREATE INDEX IF NOT EXISTS idx_node_comment_node ON node_comment(node_id, created_at);CREATE TABLE IF NOT EXISTS schema_version (
			version INTEGER NOT NULL,
			applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
		);
