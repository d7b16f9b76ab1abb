// The live stream: EventSource on /api/stream, resumed from the snapshot's event id.
//
// The browser re-connects by itself and sends Last-Event-ID; a `reset` event means the
// server no longer has the events we missed, so the caller re-fetches the snapshot.

import { state, emit } from "./state.js";

const TYPES = ["warning", "townships", "queue", "coverage", "delivery", "ack", "command", "rejected", "health", "reset", "session_expired"];

let source = null;

export function connect(lastEventId) {
  disconnect();
  const query = lastEventId ? `?last_event_id=${encodeURIComponent(lastEventId)}` : "";
  source = new EventSource(`/api/stream${query}`, { withCredentials: true });
  emit("conn", "connecting");
  source.onopen = () => emit("conn", "live");
  source.onerror = () => emit("conn", source && source.readyState === EventSource.CLOSED ? "down" : "connecting");
  for (const type of TYPES) {
    source.addEventListener(type, (event) => {
      if (event.lastEventId) state.lastEventId = event.lastEventId;
      let data = null;
      try {
        data = JSON.parse(event.data);
      } catch {
        return;
      }
      emit(`sse:${type}`, data);
    });
  }
}

export function disconnect() {
  if (source) {
    source.close();
    source = null;
  }
}
