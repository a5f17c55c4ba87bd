"""Background jobs on the PostgreSQL we already run (procrastinate).

`queue` puts work on the queue (indexing a file, a Notion sync, removing a source)
and manages it; `tasks` is the work itself and what it tells people; `runner` runs
workers and waits for jobs; `watch` follows jobs for the chat; `schedule` says when
each space's Notion syncs next. The schema is revision 0004 (`db/job_schema.py`).
"""
