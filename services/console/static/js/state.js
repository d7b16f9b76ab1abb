// The client's copy of the read model, and a tiny publish/subscribe between views.

export const state = {
  me: null,
  geo: null,
  towns: new Map(), // code -> {code, name_zh, county_code, population}
  counties: new Map(), // code -> {code, name_zh, name_en}
  warnings: new Map(), // warning_id -> summary
  levels: {}, // township code -> level
  queue: [],
  rejected: { counts: {}, recent: [] },
  health: null,
  selected: null,
  filters: { hazard: "", level: "", county: "", township: "", active: true },
  lastEventId: null,
  serverOffsetMs: 0, // server event-time "now" minus client Date.now()
  capAvailable: false,
  replay: { available: false, scenarios: [] },
  activeTab: "detail",
};

const listeners = new Map();

export function on(topic, fn) {
  if (!listeners.has(topic)) listeners.set(topic, new Set());
  listeners.get(topic).add(fn);
}

export function emit(topic, payload) {
  for (const fn of listeners.get(topic) || []) fn(payload);
}

export function can(permission) {
  return Boolean(state.me && state.me.permissions.includes(permission));
}

export function setServerNow(iso) {
  if (iso) state.serverOffsetMs = Date.parse(iso) - Date.now();
}

export function serverNowMs() {
  return Date.now() + state.serverOffsetMs;
}
