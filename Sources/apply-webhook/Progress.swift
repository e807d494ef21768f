#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records

/// The live progress line of `--batch` on a terminal: done, the total when the inputs are
/// files or directories (counted before the run: lines of files, entries of directories;
/// unknown for stdin), events per second and an estimate of the time left. Redrawn at most
/// five times a second, on stderr only; nothing at all when stderr is not a terminal.
struct Progress {
    var total: Int?
    private let start: Int
    private var last = 0
    private(set) var drawn = false
    private let clock: () -> Int
    private let output: ([UInt8]) -> Void

    init(total: Int?, clock: @escaping () -> Int = { Clock.monotonicMillis() },
         output: @escaping ([UInt8]) -> Void = { _ = FileOutput.writeAll(2, $0) }) {
        self.total = total
        self.clock = clock
        self.output = output
        start = clock()
    }

    /// The text of the line after `done` events, `elapsed` ms into the run.
    static func line(done: Int, total: Int?, elapsedMillis: Int, detail: String) -> String {
        let seconds = Double(max(elapsedMillis, 1)) / 1000
        let rate = Double(done) / seconds
        var text = total.map { "\(done)/\($0) events" + ($0 > 0 ? " (\(min(done * 100 / $0, 100))%)" : "") } ?? "\(done) events"
        text += ", \(Int(rate.rounded()))/s"
        if let total, rate > 0, total > done {
            text += ", ETA " + duration(Int((Double(total - done) / rate).rounded(.up)))
        }
        return text + " - " + detail
    }

    static func duration(_ s: Int) -> String {
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m\(s % 60 < 10 ? "0" : "")\(s % 60)s" }
        return "\(s / 3600)h\(s % 3600 / 60 < 10 ? "0" : "")\(s % 3600 / 60)m"
    }

    /// Whether the line is due for a redraw.
    func due() -> Bool { clock() - last >= 200 }

    mutating func update(done: Int, detail: String) {
        let t = clock()
        guard t - last >= 200 else { return }
        last = t
        drawn = true
        output(Array("\r\(Log.program): \(Self.line(done: done, total: total, elapsedMillis: t - start, detail: detail))\u{1B}[K".utf8))
    }

    /// Clears the line, so the summary starts on a clean one.
    func finish() {
        if drawn { output(Array("\r\u{1B}[K".utf8)) }
    }

    /// Items the inputs hold, when that can be known without consuming them: non-blank
    /// lines of regular files, regular non-hidden files of directories. nil for stdin or
    /// anything else that cannot be read twice.
    static func count(_ paths: [String]) -> Int? {
        guard !paths.isEmpty else { return nil }
        var n = 0
        for path in paths {
            var st = stat()
            guard stat(path, &st) == 0 else { return nil }
            if st.st_mode & S_IFMT == S_IFDIR {
                n += Batch.entries(path).filter { name in
                    var f = stat()
                    return stat(path + "/" + name, &f) == 0 && f.st_mode & S_IFMT == S_IFREG
                }.count
            } else if st.st_mode & S_IFMT == S_IFREG {
                guard let lines = nonBlankLines(path) else { return nil }
                n += lines
            } else {
                return nil
            }
        }
        return n
    }

    /// Non-blank lines of a file, read in 64 KiB pieces (a replay file may be larger than memory).
    static func nonBlankLines(_ path: String) -> Int? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var n = 0
        var blank = true
        while true {
            let got = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if got < 0 && errno == EINTR { continue }
            if got < 0 { return nil }
            if got == 0 { break }
            for b in chunk[0..<got] {
                if b == 0x0A { if !blank { n += 1 }; blank = true } else if b != 0x20 && b != 0x09 && b != 0x0D { blank = false }
            }
        }
        return blank ? n : n + 1
    }
}
