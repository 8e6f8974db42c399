"""Documented bounds: what one caller can make leadrelay store or hold.

Temporal refuses a payload above 2 MB (and a refused continue-as-new input wedges the
workflow), and terminates a history above 50 MB or 51,200 events. Everything a lead
workflow carries from run to run is therefore bounded by the numbers below, whatever one
person sends.
"""

from __future__ import annotations

TEMPORAL_PAYLOAD_LIMIT_BYTES = 2 * 1024 * 1024
"""Temporal's hard limit for one payload (a signal argument, a continue-as-new input)."""

# --- one person's lead workflow --------------------------------------------------------

LEAD_PENDING_BYTES = 1024 * 1024
"""Submissions waiting in one lead workflow, in payload bytes. While they fit, each is kept
whole; past this, a new submission is kept cut (see `CUT_TEXT_CHARS`), and one that does
not fit even cut becomes a dead letter. Half of Temporal's limit, so that the carried state
(pending, remembered ids, dead letters, operator requests) always fits in one payload."""

CUT_TEXT_CHARS = 256
"""A cut submission keeps its contact fields, form and UTM, each text at most this long;
its other fields are replaced by a notice saying how much was cut. The note in amoCRM
shows the notice; the whole submission stays in the workflow's Temporal history."""

PROCESSED_IDS_KEPT = 500
"""Submission ids a lead workflow remembers to drop repeats (about 35 KB)."""

DEAD_LETTERS_KEPT = 50
"""Dead letters listed in a lead workflow's state; older ones are only counted."""

SKIPPED_KEPT = 20
"""Submissions (or events) set aside by the `skip` signal and kept in a workflow's state;
older ones are only counted."""

SKIPPED_SUBMISSION_BYTES = 16 * 1024
"""A skipped submission larger than this, in payload bytes, is kept cut; with SKIPPED_KEPT
that bounds the skipped list to about 320 KB of the carried state."""

OPERATOR_REQUESTS_KEPT = 20
"""Queued operator requests (resync, note); a signal past this is refused with an error."""

OPERATOR_NOTE_CHARS = 4000
"""An operator's note (signal `add_note`) is cut to this many characters."""

ERROR_MESSAGE_CHARS = 2000
"""`last_error.message` is cut to this many characters."""

AMOCRM_PAGES_MAX = 10
"""A contact search or a lead read follows `_links.next` for at most this many pages of
250 (one request each); what lies beyond is not read."""

# --- one amoCRM entity's workflow -------------------------------------------------------

ENTITY_PENDING_BYTES = 1024 * 1024
"""Events waiting in one entity workflow, in payload bytes; past this a new event keeps only
its routing fields (its raw item is dropped), and past that it is refused and counted."""
