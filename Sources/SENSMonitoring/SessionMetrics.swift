// Where the package leaves swift-prometheus out (SENSD_WITHOUT_EXPORTER=1 with Swift 6.0, Package.swift),
// this file goes with it; sensd-exporter, its only user, is left out too.
#if canImport(Prometheus)
import Prometheus
import SENSClient

/// The exporter's metrics in the Prometheus text format, encoded by swift-prometheus.
///
/// Two kinds: counters the exporter keeps from sensd's event stream for as long as it runs (events by type,
/// session durations; they start at 0 when the exporter starts, which Prometheus' `rate()` and `increase()`
/// treat as a counter reset), and gauges made anew from one snapshot of the open sessions and sensd's own
/// counters at each scrape. Service-manager sessions (classes `manager`, `manager-early`) are not logons
/// and are left out everywhere, as sensd's default subscription leaves them out.
public final class SessionMetrics: Sendable {
    private let stream = PrometheusCollectorRegistry()
    private let missed: Counter
    private let connected: Gauge

    /// Session durations, from a minute to a week.
    public static let durationBuckets: [Double] = [60, 300, 900, 1800, 3600, 4 * 3600, 8 * 3600, 24 * 3600, 7 * 24 * 3600]

    public init() {
        missed = stream.makeCounter(descriptor: Self.name("exporter_events_missed_total", "Events the exporter could not count: sensd's log no longer held them when it reconnected."))
        connected = stream.makeGauge(descriptor: Self.name("exporter_stream_connected", "1 while the exporter's event stream is subscribed to sensd; 0 while it reconnects."))
        connected.set(Int64(0))
        // Every type from the start, at 0: a query for one that has not happened yet is 0, not empty.
        for kind in EventKind.allCases { _ = eventCounter(kind.rawValue) }
    }

    private static func name(_ metric: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "sensd", metricName: metric, unitName: "", helpText: help)
    }

    private func eventCounter(_ event: String) -> Counter {
        stream.makeCounter(descriptor: Self.name("events_total", "SENS events sensd published since this exporter started, by type."), labels: [("event", event)])
    }

    /// Counts one event of the stream; a `Logoff` that knows when its session began adds its duration.
    public func observe(_ event: SENSEvent) {
        eventCounter(event.event.rawValue).increment()
        if event.event == .logoff, let start = event.sessionStart, event.time >= start {
            let seconds = Double(event.time.microsecondsSinceEpoch - start.microsecondsSinceEpoch) / 1_000_000
            stream.makeValueHistogram(
                descriptor: Self.name("session_duration_seconds", "How long the sessions that ended lasted, by Windows logon type."),
                labels: [("logon_type", event.logonType?.rawValue ?? "unknown")], buckets: Self.durationBuckets
            ).record(seconds)
        }
    }

    /// Whether the event stream is subscribed (sensd accepted its request) or reconnecting.
    public func streamConnected(_ isConnected: Bool) {
        connected.set(Int64(isConnected ? 1 : 0))
    }

    /// Counts events a reconnection could not get back.
    public func observe(_ gap: Gap) {
        missed.increment(by: Int64(gap.lastMissing - gap.firstMissing + 1))
    }

    /// The whole exposition: the stream's counters, then the gauges of `snapshot` and `stats` (nil when sensd
    /// could not be asked: `sensd_up` is then 0 and only the counters follow).
    public func render(snapshot: Snapshot?, stats: SensdStats?) -> String {
        let now = PrometheusCollectorRegistry()
        let up = now.makeGauge(descriptor: Self.name("up", "Whether the exporter could ask sensd for this scrape (1) or not (0)."))
        if let snapshot, let stats {
            up.set(Int64(1))
            Self.sessionGauges(snapshot, into: now)
            Self.statsGauges(stats, into: now)
        } else {
            up.set(Int64(0))
        }
        return now.emitToString() + stream.emitToString()
    }

    /// The labels a session is counted under: few values each, so the series stay few.
    static func labels(_ s: Snapshot.Session) -> [(String, String)] {
        [
            ("class", s.sessionClass ?? "unknown"),
            ("type", s.type ?? "unknown"),
            ("logon_type", s.logonType?.rawValue ?? "unknown"),
            ("remote", s.remote == true ? "true" : "false"),
            ("seat", s.seat ?? ""),
            ("locked", s.locked == true ? "true" : "false"),
            ("idle", s.idle == true ? "true" : "false"),
        ]
    }

    private static func sessionGauges(_ snapshot: Snapshot, into registry: PrometheusCollectorRegistry) {
        let sessions = Snapshot.logons(snapshot.sessions)
        var counts: [[String]: (labels: [(String, String)], count: Int)] = [:]
        for session in sessions {
            let labels = labels(session)
            counts[labels.map(\.1), default: (labels, 0)].count += 1
        }
        // No session, no series: `sum(sensd_sessions) or vector(0)` (sensd_users is always there).
        let descriptor = name("sessions", "Sessions open now, by logind class, type, Windows logon type, remoteness, seat, lock and idle state.")
        for (labels, count) in counts.values.sorted(by: { $0.labels.map(\.1).lexicographicallyPrecedes($1.labels.map(\.1)) }) {
            registry.makeGauge(descriptor: descriptor, labels: labels).set(Int64(count))
        }
        let users = Set(sessions.compactMap { $0.uid.map(String.init) ?? $0.userName })
        registry.makeGauge(descriptor: name("users", "Distinct users with at least one session open now.")).set(Int64(users.count))
        registry.makeGauge(descriptor: name("snapshot_seq", "The seq of the last event the session gauges reflect.")).set(Int64(snapshot.seq))
    }

    private static func statsGauges(_ s: SensdStats, into registry: PrometheusCollectorRegistry) {
        registry.makeGauge(descriptor: name("subscribers", "Subscribers connected to sensd now, the exporter's own scrape included.")).set(Int64(s.subscribers))
        registry.makeCounter(descriptor: name("connections_refused_total", "Connections sensd refused at a limit since it started.")).increment(by: Int64(s.refused))
        registry.makeCounter(descriptor: name("subscribers_cut_off_total", "Subscribers sensd cut off for falling behind since it started.")).increment(by: Int64(s.overflowed))
        registry.makeCounter(descriptor: name("forged_signals_total", "Look-alike logind or systemd signals from other peers sensd dropped since it started.")).increment(by: Int64(s.forgedSignals))
        registry.makeCounter(descriptor: name("published_events_total", "Events sensd published since it started.")).increment(by: Int64(s.eventsSinceStart))
        registry.makeGauge(descriptor: name("last_seq", "The seq of the last event sensd gave out.")).set(Int64(s.lastSeq))
        if let oldest = s.oldestSeq {
            registry.makeGauge(descriptor: name("oldest_seq", "The oldest event sensd's log still holds: the furthest back a client can resume.")).set(Int64(oldest))
        }
        registry.makeGauge(descriptor: name("start_time_seconds", "When sensd started, in seconds since the epoch.")).set(Double(s.startedAt.microsecondsSinceEpoch) / 1_000_000)
        let logDescriptor = name("log_written", "1 while sensd writes every event to its durable log first; 0 while it cannot (disk full or failing, or no log): live delivery only.")
        registry.makeGauge(descriptor: logDescriptor, labels: [("state", s.log)]).set(Int64(s.log == "written" ? 1 : 0))
        registry.makeGauge(descriptor: name("state_damaged", "Problems with sensd's state directory set aside when it started (sensd --check-state lists them).")).set(Int64(s.stateDamaged))
        registry.makeGauge(descriptor: name("tracked_sessions", "Sessions sensd tracks now, service managers' included.")).set(Int64(s.sessions))
    }
}
#endif
