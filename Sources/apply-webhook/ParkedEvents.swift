import Records
import KV

/// `apply-webhook --pending list|purge`: the events parked under `pending/` because no
/// user is known for their customer yet (an account shared with other products parks
/// every event of the others' customers). They expire by themselves (`--pending-ttl`);
/// these commands show them and remove them sooner.
struct ParkedEvents {
    let store: any KVStore
    let now: () -> Int

    struct Parked {
        var key: String
        var customer: String?
        var eventID: String?
        var type: String?
        var created: Int?
        var parkedAt: Int?
        var expiresAt: Int?

        var json: JSON {
            var o = JSONObject()
            o["customer"] = customer.map { .string($0) } ?? .null
            o["event_id"] = eventID.map { .string($0) } ?? .null
            o["type"] = type.map { .string($0) } ?? .null
            o["created"] = created.map { JSON($0) } ?? .null
            o["parked_at"] = parkedAt.map { JSON($0) } ?? .null
            o["expires_at"] = expiresAt.map { JSON($0) } ?? .null
            o["key"] = .string(key)
            return .object(o)
        }
    }

    /// Every parked event still live, in key order (customer, then event id).
    func forEach(_ body: (Parked) throws -> Void) throws {
        var cursor: String?
        repeat {
            let page = try store.list(prefix: WebhookApplier.pendingRoot, limit: 1000, cursor: cursor)
            for key in page.keys {
                guard let entry = try store.get(key) else { continue }   // drained or expired meanwhile
                let event = entry.value["event"]
                try body(Parked(key: key, customer: entry.value["customer"]?.string ?? event?["data"]?["object"]?["customer"]?.string,
                                eventID: event?["id"]?.string, type: event?["type"]?.string,
                                created: event?["created"]?.int, parkedAt: entry.value["parked_at"]?.int,
                                expiresAt: entry.expiresAt))
            }
            cursor = page.cursor
        } while cursor != nil
    }

    /// Removes parked events parked (or, for entries from before `parked_at` was kept,
    /// created) at least `olderThan` seconds ago; all of them when nil. Returns how many.
    func purge(olderThan: Int?) throws -> Int {
        var removed = 0
        let cutoff = olderThan.map { now() - $0 }
        try forEach { p in
            if let cutoff, let t = p.parkedAt ?? p.created, t > cutoff { return }
            if try store.delete(p.key) { removed += 1 }
        }
        return removed
    }
}

/// `--pending list` prints one JSON line per parked event, then `{"pending": N}`;
/// `--pending purge [--older-than SECONDS]` prints `{"purged": N}`. Exit 0, 2 on usage, 3
/// when the store fails.
func runPendingCommand(_ command: String, olderThan: String?, kvPath: String, extra: [String]) -> Int32 {
    if !extra.isEmpty { Log.fatal("unexpected argument \(extra[0]) after --pending \(command)") }
    var age: Int?
    if let olderThan {
        guard let n = Int(olderThan), n >= 0 else { Log.fatal("--older-than takes seconds (an integer >= 0)") }
        age = n
    }
    func line(_ json: JSON) {
        var bytes = json.serialized()
        bytes.append(0x0A)
        FileOutput.writeAll(1, bytes)
    }
    do {
        let parked = ParkedEvents(store: try openStore(kvPath), now: { Clock.now() })
        switch command {
        case "list":
            if age != nil { Log.fatal("--older-than is for --pending purge") }
            var n = 0
            try parked.forEach { p in line(p.json); n += 1 }
            line(["pending": JSON(n)])
        case "purge":
            line(["purged": JSON(try parked.purge(olderThan: age))])
        default:
            Log.fatal("--pending takes list or purge, not \(command)")
        }
        return 0
    } catch {
        Log.error("\(error)")
        return 3
    }
}
