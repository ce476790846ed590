// The live view of the namespace: every 2 s one request for the queues and one for the
// topics (never one per entity), rates from the cumulative totals, and the last hour per
// entity from the broker's history sampler. Pages subscribe and re-render from the snapshot.

import { ApiError, get, query } from "./api.js";

export const POLL_MS = 2000;
/** Rates average over this window, so one slow poll doesn't make them jump. */
const RATE_WINDOW_MS = 10000;
/** Without the broker's history, the charts show what this page saw (this many polls). */
const LOCAL_HISTORY_POINTS = 180;

const listeners = new Set();
const rateSamples = new Map(); // path -> [{t, incoming, outgoing}]
const localHistory = new Map(); // path -> [{t_ms, active, dead_letter}]
// The broker's samples, merged here: each poll asks only for what is newer than the last
// one seen (`since`), so 1,000 entities' hour is fetched once, not every 10 s.
const serverHistory = new Map(); // path -> [sample]
let historyInterval = null; // the sampler's period once it answered
let historySince = null;
let historyDueAt = 0;
let historyMissing = false;
/** A broker that ignores `since` answers the whole hour: then ask seldom. */
const FULL_HISTORY_EVERY_MS = 60000;
const HOUR_MS = 3600000;
let timer = null;
let running = false;

export const state = {
  snapshot: null, // {at, entities: Map(path -> Entity), order: [path], totals}
  error: null,
};

/** Calls `listener(state)` after every poll; answers the unsubscribe function. */
export function subscribe(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function start() {
  if (running) return;
  running = true;
  poll();
}

/** Stops polling and forgets what was seen (after sign-out nothing of it may show). */
export function stop() {
  running = false;
  clearTimeout(timer);
  state.snapshot = null;
  rateSamples.clear();
  localHistory.clear();
  serverHistory.clear();
  historySince = null;
  historyDueAt = 0;
}

/** Polls now (after a change the user made) instead of waiting for the next tick. */
export function refresh() {
  if (!running) return;
  clearTimeout(timer);
  poll();
}

async function poll() {
  const at = Date.now();
  try {
    const [queues, topics] = await Promise.all([get("/api/queues"), get("/api/topics")]);
    await pollHistory(at);
    if (!running) return; // signed out while the answers were on their way
    state.snapshot = build(queues, topics, at);
    state.error = null;
  } catch (error) {
    state.error = error;
    if (error instanceof ApiError && error.status === 401) {
      running = false;
      return;
    }
  }
  for (const listener of listeners) listener(state);
  if (running) timer = setTimeout(poll, Math.max(200, POLL_MS - (Date.now() - at)));
}

async function pollHistory(now) {
  if (historyMissing || now < historyDueAt) return;
  let answer;
  try {
    answer = await get(`/api/console/history${query({ since: historySince })}`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) historyMissing = true;
    else if (error instanceof ApiError && error.status === 401) throw error;
    return;
  }
  historyInterval = Math.max(POLL_MS, answer.interval_ms ?? POLL_MS);
  let newest = historySince ?? 0;
  let ignoredSince = false;
  for (const [path, samples] of Object.entries(answer.entities ?? {})) {
    let kept = serverHistory.get(path);
    if (!kept) serverHistory.set(path, (kept = []));
    const last = kept.length ? kept[kept.length - 1].t_ms : -Infinity;
    for (const sample of samples) {
      if (historySince !== null && sample.t_ms <= historySince) ignoredSince = true;
      if (sample.t_ms > last) kept.push(sample);
      newest = Math.max(newest, sample.t_ms);
    }
    const cutoff = newest - HOUR_MS;
    while (kept.length && kept[0].t_ms < cutoff) kept.shift();
  }
  historySince = newest || null;
  historyDueAt = now + (ignoredSince ? FULL_HISTORY_EVERY_MS : historyInterval);
}

function countsOf(info) {
  return {
    active: info.active_message_count,
    dead_letter: info.dead_letter_message_count,
    scheduled: info.scheduled_message_count,
    deferred: info.deferred_message_count,
    transfer: info.transfer_message_count,
    transfer_dead_letter: info.transfer_dead_letter_message_count,
    locked: info.locked_message_count,
  };
}

function build(queues, topics, at) {
  const entities = new Map();
  const order = [];
  const add = (entity) => {
    entities.set(entity.path, entity);
    order.push(entity.path);
  };
  const totals = {
    queues: queues.length, topics: topics.length, subscriptions: 0,
    active: 0, dead_letter: 0, scheduled: 0, deferred: 0, transfer: 0, incoming: 0, outgoing: 0,
  };
  const messaging = (kind, path, name, info, extra) => {
    const counts = countsOf(info);
    const [incoming, outgoing] = rates(path, info, at);
    for (const key of ["active", "dead_letter", "scheduled", "deferred", "transfer"]) totals[key] += counts[key];
    totals.incoming += incoming ?? 0;
    totals.outgoing += outgoing ?? 0;
    keepLocal(path, at, counts, info);
    return { kind, path, name, info, counts, incoming, outgoing, ...extra };
  };
  for (const queue of queues) add(messaging("queue", queue.name, queue.name, queue, {}));
  for (const topic of topics) {
    const subscriptions = topic.subscriptions ?? [];
    totals.subscriptions += subscriptions.length;
    totals.scheduled += topic.scheduled_message_count;
    add({
      kind: "topic", path: topic.name, name: topic.name, info: topic,
      counts: { scheduled: topic.scheduled_message_count },
      subscriptionCount: subscriptions.length,
    });
    for (const subscription of subscriptions) {
      add(messaging("subscription", subscription.name, subscription.subscription_name, subscription,
        { topic: topic.name }));
    }
  }
  forgetGone(rateSamples, entities);
  forgetGone(localHistory, entities);
  forgetGone(serverHistory, entities);
  return { at, entities, order, totals };
}

function forgetGone(map, entities) {
  for (const path of map.keys()) if (!entities.has(path)) map.delete(path);
}

function rates(path, info, at) {
  let samples = rateSamples.get(path);
  if (!samples) rateSamples.set(path, (samples = []));
  samples.push({ t: at, incoming: info.enqueued_total, outgoing: info.delivered_total });
  while (samples.length > 2 && at - samples[1].t >= RATE_WINDOW_MS) samples.shift();
  if (samples.length < 2) return [null, null];
  const first = samples[0];
  const seconds = (at - first.t) / 1000;
  if (seconds <= 0) return [null, null];
  // A restart resets the totals: never show a negative rate.
  const per = (now, then) => Math.max(0, now - then) / seconds;
  return [per(info.enqueued_total, first.incoming), per(info.delivered_total, first.outgoing)];
}

function keepLocal(path, at, counts, info) {
  let points = localHistory.get(path);
  if (!points) localHistory.set(path, (points = []));
  points.push({
    t_ms: at, active: counts.active, dead_letter: counts.dead_letter,
    incoming_total: info.enqueued_total, outgoing_total: info.delivered_total,
  });
  if (points.length > LOCAL_HISTORY_POINTS) points.shift();
}

/**
 * The last hour of an entity: the broker's samples (every 10 s) followed by the latest poll,
 * so a chart ends where the counts on the page are; or what this page saw.
 */
export function history(path) {
  const seen = localHistory.get(path) ?? [];
  const fromServer = serverHistory.get(path);
  if (!fromServer || !fromServer.length) return seen;
  const latest = seen[seen.length - 1];
  return latest && latest.t_ms > fromServer[fromServer.length - 1].t_ms ? [...fromServer, latest] : fromServer;
}

/** Whether the charts come from the broker's sampler (an hour) or from this page. */
export function historySpan() {
  return historyInterval !== null && !historyMissing ? "last hour" : "since this page opened";
}
