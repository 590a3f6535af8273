"""How the send path tells the owners of runs what happened, without importing them (see delivery.sources).

- `deliveries_counted(run_id, counts)`: a batch ended these deliveries of the run; `counts` maps
  "sent", "failed", "skipped" to how many. Sent once per batch per run, for live progress counters.
- `run_deliveries_final(run_id)`: the run has nothing queued or in flight any more. May be sent more than
  once for a run (concurrent batches, the reaper); the receiver must be idempotent.

- `esp_event_recorded(event)`: an ESP's tracking webhook reported something about a sent message
  (delivered, bounced, ...) and it is now in the event table. Sent once per ESP event (duplicates are dropped).

Receivers run in the sender's process and transaction; an exception in one propagates.
"""

from django.dispatch import Signal

deliveries_counted = Signal()
run_deliveries_final = Signal()
esp_event_recorded = Signal()
