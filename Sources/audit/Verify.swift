#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records

/// `audit verify FILE...`: the chain across files given oldest first.
enum VerifyCommand {
    struct Settings {
        var files: [String] = []
        var fromStart = false
        var head: String?
        var useHead = true
        var spill: String?
        var checkSpill = true
    }

    enum Result: Equatable {
        case valid(summary: [String])
        case broken(String)
    }

    static func main(_ options: ParsedOptions) -> Never {
        var s = Settings()
        s.fromStart = options.flag("--from-start")
        s.useHead = !options.flag("--no-head")
        s.checkSpill = !options.flag("--no-spill")
        s.head = options.value("--head")
        s.spill = options.value("--spill")
        s.files = options.positional
        if s.files.isEmpty { Log.fatal("verify needs at least one FILE (oldest first)") }
        let result = run(s)
        switch result {
        case .valid(let summary):
            FileOutput.writeAll(1, Array((summary.joined(separator: "\n") + "\n").utf8))
            exit(0)
        case .broken(let message):
            FileOutput.writeAll(1, Array((message + "\n").utf8))
            exit(1)
        }
    }

    static func run(_ s: Settings) -> Result {
        var notes: [String] = []
        // The head is read before the log: a writer updates it after appending, so every
        // seq it names is already in the files.
        var head: AuditHead?
        let headPath = s.useHead ? (s.head ?? (s.files.last! == "-" ? nil : s.files.last! + ".head")) : nil
        if let headPath {
            if let bytes = readFile(headPath, limit: 4096) {
                head = AuditHead.parse(bytes)
                if head == nil { notes.append("note: \(headPath) is unreadable as a head file; not checked") }
            } else if s.head != nil {
                Log.fatal("cannot read \(headPath)")
            }
        }
        var verifier = ChainVerifier(fromStart: s.fromStart, head: head)
        for file in s.files {
            if let failure = feed(file, into: &verifier) { return .broken(failure) }
        }
        do {
            try verifier.finish(lastFile: s.files.last!)
        } catch {
            return .broken("\(error) (or give the rotated files too)")
        }
        for gap in verifier.gaps {
            if let problem = checkGap(gap.fields, at: gap.location, settings: s, notes: &notes) {
                return .broken(problem)
            }
        }
        var summary = ["ok: \(s.files.count) file\(s.files.count == 1 ? "" : "s"), \(verifier.entries) entries"
            + (verifier.firstSeq.map { " (seq \($0)..\(verifier.lastSeq!))" } ?? "")
            + (verifier.lastHash.map { ", last hash \($0)" } ?? "")]
        if let anchor = verifier.anchor {
            summary.append("note: the first line links to \(anchor), in a file not given; that link is unchecked")
        }
        if let head, let headPath {
            summary.append(verifier.headMatched ? "note: matches \(headPath) (seq \(head.seq))"
                                                : "note: \(headPath) names seq \(head.seq), before these files")
        } else if s.useHead, headPath != nil {
            summary.append("note: no head file; lines removed from the end cannot be detected")
        }
        return .valid(summary: summary + notes)
    }

    /// Feeds one file's lines; the failure text, or nil.
    static func feed(_ file: String, into verifier: inout ChainVerifier) -> String? {
        let fd = file == "-" ? 0 : open(file, O_RDONLY | O_CLOEXEC)
        if fd < 0 { Log.err("cannot read \(file)", status: 2) }
        defer { if fd != 0 { close(fd) } }
        var reader = LineReader(fd: fd)
        var number = 0
        var failure: String?
        reader.forEachLine { event in
            guard failure == nil else { return }
            number += 1
            let location = ChainVerifier.Location(file: file, line: number)
            switch event {
            case .line(let line):
                do { try verifier.feed(line, at: location) } catch { failure = "\(error)" }
            case .tooLong:
                failure = "\(location): line longer than \(LineReader.defaultMaxLine) bytes"
            }
        }
        if failure == nil, number > 0, !endsWithNewline(fd) {
            failure = "\(file):\(number): the last line is incomplete (a writer died mid-write)"
        }
        return failure
    }

    static func endsWithNewline(_ fd: Int32) -> Bool {
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_size > 0 else { return true }
        var byte: UInt8 = 0
        return pread(fd, &byte, 1, st.st_size - 1) == 1 && byte == 0x0A
    }

    /// A gap line names a range of the spill file and its hash: the spilled entries are
    /// checked as strictly as the log when the spill file is at hand.
    static func checkGap(_ gap: JSONObject, at location: ChainVerifier.Location, settings: Settings,
                         notes: inout [String]) -> String? {
        var what: [String] = []
        if let n = gap["stderr_only"]?.int {
            what.append("\(n) entr\(n == 1 ? "y" : "ies") only on stderr (pid \(gap["pid"]?.int.map(String.init) ?? "?"))")
        }
        if let path = gap["spill"]?.string, let from = gap["spill_from"]?.int, let to = gap["spill_to"]?.int,
           let hash = gap["spill_sha256"]?.string, to >= from {
            let n = gap["spilled"]?.int ?? 0
            let spill = settings.spill ?? path
            var state = "not checked"
            if settings.checkSpill {
                let fd = open(spill, O_RDONLY | O_CLOEXEC)
                if fd >= 0 {
                    var bytes = [UInt8](repeating: 0, count: to - from)
                    var done = 0
                    while done < bytes.count {
                        let r = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, $0.count - done, off_t(from + done)) }
                        if r <= 0 { break }
                        done += r
                    }
                    close(fd)
                    if done != bytes.count || AuditChain.hash(bytes) != hash {
                        return "\(location): gap: bytes \(from)..\(to) of \(spill) changed or removed since this gap was recorded"
                    }
                    state = "hash checked"
                } else {
                    state = "\(spill) not found, not checked"
                }
            }
            what.append("\(n) entr\(n == 1 ? "y" : "ies") spilled to \(path) bytes \(from)..\(to) (\(state))")
        }
        notes.append("note: \(location): gap: " + (what.isEmpty ? "no details" : what.joined(separator: "; ")))
        return nil
    }
}
