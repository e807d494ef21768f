import Records
import Crypto

// The audit log's format: one JSON object per line, each naming the SHA-256 of the line
// before it ("prev"), so editing, removing or reordering any line breaks the chain at a
// place `ChainVerifier` can name. See docs/audit.md.

public enum AuditChain {
    /// The `prev` of the first line of a brand new log.
    public static let zeroHash = String(repeating: "0", count: 64)

    /// SHA-256 hex over a line's exact bytes, without its newline.
    public static func hash(_ line: UnsafeBufferPointer<UInt8>) -> String {
        Hex.encode(Digest.sha256(Array(line)))
    }

    public static func hash(_ line: [UInt8]) -> String { Hex.encode(Digest.sha256(line)) }

    static func isHash(_ s: String) -> Bool {
        s.utf8.count == 64 && s.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    /// RFC 3339 with milliseconds, UTC.
    public static func timestamp(millis: Int) -> String {
        let seconds = millis >= 0 ? millis / 1000 : (millis - 999) / 1000
        let ms = millis - seconds * 1000
        let base = Clock.iso8601(seconds)   // ends in "Z"
        let frac = ms < 10 ? "00\(ms)" : ms < 100 ? "0\(ms)" : "\(ms)"
        return String(base.dropLast()) + ".\(frac)Z"
    }
}

/// What one audit line says, before the writer knows its place in the chain (`seq`,
/// `prev`) and its time, which are set under the lock so both grow along the file.
public struct AuditEntry: Equatable, Sendable {
    /// Fields the writer owns. An annotation carrying one of them keeps its value under
    /// `annotation_<key>` instead, so no filter can forge a line's place or time.
    public static let reservedKeys: Set<String> = ["seq", "time", "unix", "request_id", "remote", "status", "prev"]

    /// The fields after seq/time/unix and before prev, in order.
    public var fields: JSONObject

    public init(fields: JSONObject) { self.fields = fields }

    /// The entry for a record carrying `annotations.audit`: the record's id, remote and
    /// status (for responses), then everything the annotation carries.
    public init(annotation: JSON, record: Record) {
        var f = JSONObject()
        // The service-wide id (the one in the access log and the x-request-id header);
        // records that have none (batch input) keep their own id.
        if let id = record.object["request_id"] ?? record.object["id"], !id.isNull { f["request_id"] = id }
        if let remote = record.object["remote"], !remote.isNull { f["remote"] = remote }
        if let status = record.object["status"] { f["status"] = status }
        if let note = annotation.object {
            for m in note.members {
                let key = AuditEntry.reservedKeys.contains(m.key) ? "annotation_" + m.key : m.key
                if f[key] == nil { f.members.append(JSONObject.Member(key, m.value)) }
            }
        } else {
            // Not an object: keep it whole rather than drop it.
            f["kind"] = "malformed"
            f["annotation"] = annotation
        }
        fields = f
    }

    /// The line (without newline) at position `seq` after the line hashing to `prev`.
    public func line(seq: Int, prev: String, millis: Int) -> [UInt8] {
        var o = JSONObject()
        o.members.reserveCapacity(fields.count + 4)
        o["seq"] = JSON(seq)
        o["time"] = .string(AuditChain.timestamp(millis: millis))
        o["unix"] = JSON(millis >= 0 ? millis / 1000 : (millis - 999) / 1000)
        o.members.append(contentsOf: fields.members)
        o["prev"] = .string(prev)
        return o.serialized()
    }

    /// The spill-file form: not chained (no seq, no prev), with why it is not in the log.
    public func spillLine(millis: Int, log: String, reason: String) -> [UInt8] {
        var o = JSONObject()
        o["time"] = .string(AuditChain.timestamp(millis: millis))
        o["unix"] = JSON(millis >= 0 ? millis / 1000 : (millis - 999) / 1000)
        o.members.append(contentsOf: fields.members)
        o["spill_reason"] = .string(reason)
        o["spill_log"] = .string(log)
        return o.serialized()
    }
}

/// The side file beside the log (`audit.log.head`): the last line's seq and hash, so a
/// new file after rotation links to the old one, and how much of the spill file the log
/// has already accounted for in gap lines. It doubles as the lock file: it is never
/// rotated, so every writer locks the same inode.
public struct AuditHead: Equatable, Sendable {
    public var seq: Int
    public var hash: String
    /// Bytes of the spill file already recorded by gap lines.
    public var spillReported: Int

    public init(seq: Int, hash: String, spillReported: Int = 0) {
        self.seq = seq; self.hash = hash; self.spillReported = spillReported
    }

    /// Always `width` bytes (padded with spaces before the newline), so rewriting it in
    /// place never needs a truncate.
    public static let width = 192

    public func serialized() -> [UInt8] {
        var out = JSONObject([("seq", JSON(seq)), ("hash", .string(hash)),
                              ("spill_reported", JSON(spillReported))]).serialized()
        if out.count < Self.width - 1 { out.append(contentsOf: repeatElement(0x20, count: Self.width - 1 - out.count)) }
        out.append(0x0A)
        return out
    }

    /// nil for an empty, torn or foreign file: the caller then trusts the log alone.
    public static func parse(_ bytes: [UInt8]) -> AuditHead? {
        var b = bytes[...]
        while let last = b.last, last == 0x0A || last == 0x20 { b = b.dropLast() }
        guard !b.isEmpty, let o = try? JSONReader.parse(Array(b)).object,
              let seq = o["seq"]?.int, let hash = o["hash"]?.string, AuditChain.isHash(hash) else { return nil }
        return AuditHead(seq: seq, hash: hash, spillReported: o["spill_reported"]?.int ?? 0)
    }
}

/// Checks a chain line by line, across files given in order (rotated first). Streaming:
/// it holds only the last line's hash and seq.
public struct ChainVerifier {
    public struct Location: Equatable, Sendable, CustomStringConvertible {
        public var file: String
        public var line: Int
        public init(file: String, line: Int) { self.file = file; self.line = line }
        public var description: String { "\(file):\(line)" }
    }

    public struct Failure: Error, Equatable, Sendable, CustomStringConvertible {
        public var location: Location
        public var message: String
        public var description: String { "\(location): \(message)" }
    }

    /// When set, the first line must be seq 1 with the zero hash (a log verified from its
    /// very beginning); otherwise the first line may link to a file not given.
    public var fromStart: Bool
    /// Checked as the lines go by: the line with this seq must hash to this value.
    public var head: AuditHead?

    public private(set) var entries = 0
    public private(set) var firstSeq: Int?
    /// The `prev` of the first line when it is not the zero hash: the file it links to
    /// was not given, so that link is unchecked.
    public private(set) var anchor: String?
    public private(set) var lastSeq: Int?
    public private(set) var lastHash: String?
    public private(set) var lastLocation: Location?
    public private(set) var headMatched = false
    /// Gap lines seen: entries that went to a spill file or stderr instead of the log.
    public private(set) var gaps: [(location: Location, fields: JSONObject)] = []

    public init(fromStart: Bool = false, head: AuditHead? = nil) {
        self.fromStart = fromStart
        self.head = head
    }

    public mutating func feed(_ line: UnsafeBufferPointer<UInt8>, at location: Location) throws(Failure) {
        func fail(_ message: String) -> Failure { Failure(location: location, message: message) }
        guard let object = try? JSONReader.parse(line).object else {
            throw fail("not a JSON object: line edited or torn")
        }
        guard let seq = object["seq"]?.int else { throw fail("no integer seq: line edited") }
        guard let prev = object["prev"]?.string, AuditChain.isHash(prev) else {
            throw fail("no prev hash: line edited")
        }
        let hash = AuditChain.hash(line)
        if let lastSeq, let lastHash {
            if seq != lastSeq + 1 {
                if seq > lastSeq + 1 {
                    let n = seq - lastSeq - 1
                    throw fail("seq \(seq) where \(lastSeq + 1) was expected: \(n) line\(n == 1 ? "" : "s") missing before it, or lines out of order")
                }
                throw fail("seq \(seq) after seq \(lastSeq): lines out of order or repeated")
            }
            if prev != lastHash {
                let before = lastLocation.map { "\($0)" } ?? "the line before"
                throw fail("hash mismatch: \(before) was edited, or a line was removed before this one")
            }
        } else {
            if fromStart && (seq != 1 || prev != AuditChain.zeroHash) {
                throw fail("the log does not start here (seq \(seq), prev \(prev.prefix(12))…): lines missing before it")
            }
            if prev == AuditChain.zeroHash {
                if seq != 1 { throw fail("seq \(seq) with the zero prev hash: the chain restarts or the line was edited") }
            } else {
                anchor = prev
            }
            firstSeq = seq
        }
        if let head, head.seq == seq {
            if head.hash != hash {
                throw fail("hash mismatch with the head file: this line (seq \(seq)) was edited")
            }
            headMatched = true
        }
        if object["kind"]?.string == "gap" { gaps.append((location, object)) }
        entries += 1
        lastSeq = seq
        lastHash = hash
        lastLocation = location
    }

    /// The checks only the end can make: lines removed from the end of the last file.
    public func finish(lastFile: String) throws(Failure) {
        guard let head, !headMatched else { return }
        let end = lastLocation ?? Location(file: lastFile, line: 0)
        if let lastSeq, head.seq > lastSeq {
            let n = head.seq - lastSeq
            throw Failure(location: Location(file: end.file, line: end.line + 1),
                          message: "the head file records seq \(head.seq) but the log ends at seq \(lastSeq): \(n) line\(n == 1 ? "" : "s") missing at the end")
        }
        if lastSeq == nil && head.seq > 0 {
            throw Failure(location: Location(file: end.file, line: 1),
                          message: "the log is empty but the head file records seq \(head.seq): lines missing")
        }
    }
}
