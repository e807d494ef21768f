#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records
import Crypto

// Sending the verification mail. The service never speaks SMTP itself: it hands a whole
// RFC 5322 message to a sendmail-compatible command on stdin (`sendmail -t`, which
// msmtp, postfix and exim all provide and which reads the recipients from the headers),
// or, by default, drops it into a maildir outbox that a person or a test can read.

struct MailError: Error, Equatable, CustomStringConvertible {
    let description: String
}

protocol Mailer {
    func send(_ message: [UInt8]) throws(MailError)
}

/// The confirmation message. Every value in a header has been validated (the address,
/// the subdomain) or is ours (the sender, checked at start), so none can inject a header.
struct ConfirmationMail {
    var from: String
    var to: String
    var subdomain: String
    var link: String
    var expiresInSeconds: Int
    var date: Int
    var messageID: String

    var bytes: [UInt8] {
        let text = """
        From: \(from)
        To: \(to)
        Subject: Confirm your reservation of \(subdomain)
        Date: \(Clock.httpDate(date).replacingGMT)
        Message-ID: <\(messageID)>
        MIME-Version: 1.0
        Content-Type: text/plain; charset=utf-8
        Content-Transfer-Encoding: 8bit
        Auto-Submitted: auto-generated

        Someone, probably you, asked to reserve the subdomain "\(subdomain)" for \(to).

        To confirm the reservation, open this link within \(Self.lifetime(expiresInSeconds)):

        \(link)

        The link works once. If you did not ask for this, ignore this message: nothing is
        reserved until the link is opened.

        """
        return Array(text.utf8)
    }

    /// The link's lifetime in words, rounded down, never up: the mail must not promise
    /// time the link does not have (5400 s is "1 hour 30 minutes", not "2 hours").
    static func lifetime(_ seconds: Int) -> String {
        func count(_ n: Int, _ unit: String) -> String { "\(n) \(unit)\(n == 1 ? "" : "s")" }
        if seconds < 60 { return count(max(seconds, 0), "second") }
        let minutes = seconds / 60
        if minutes < 60 { return count(minutes, "minute") }
        let (hours, rest) = (minutes / 60, minutes % 60)
        return rest == 0 ? count(hours, "hour") : count(hours, "hour") + " " + count(rest, "minute")
    }

    /// Refuses a sender that could add a header or break the From line.
    static func isSafeHeaderValue(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.allSatisfy { $0 >= 0x20 && $0 != 0x7F }
    }
}

private extension String {
    /// RFC 5322 prefers a numeric zone to the obsolete "GMT".
    var replacingGMT: String { hasSuffix(" GMT") ? String(dropLast(4)) + " +0000" : self }
}

/// Delivers into a maildir (`tmp/`, `new/`, `cur/`): written and fsynced in `tmp/`, then
/// renamed into `new/`, so a reader never sees half a message and a crash leaves at most
/// a stray file in `tmp/`.
struct MaildirMailer: Mailer {
    let directory: String

    func send(_ message: [UInt8]) throws(MailError) {
        guard Self.makeDirectories(directory) else {
            throw MailError(description: "cannot create \(directory): \(errnoText(errno))")
        }
        for sub in ["/tmp", "/new", "/cur"] where mkdir(directory + sub, 0o700) != 0 && errno != EEXIST {
            throw MailError(description: "cannot create \(directory + sub): \(errnoText(errno))")
        }
        let name = Self.uniqueName()
        let temporary = directory + "/tmp/" + name
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw MailError(description: "cannot create \(temporary): \(errnoText(errno))") }
        var ok = FileOutput.writeAll(fd, message) && fsync(fd) == 0
        ok = close(fd) == 0 && ok
        if ok { ok = rename(temporary, directory + "/new/" + name) == 0 }
        if !ok {
            let reason = errnoText(errno)
            unlink(temporary)
            throw MailError(description: "cannot deliver into \(directory): \(reason)")
        }
        let dir = open(directory + "/new", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dir >= 0 { _ = fsync(dir); close(dir) }
    }

    /// `time.MusecPpid_Rrandom.host`, after the maildir convention: unique across
    /// processes and machines sharing the directory.
    static func uniqueName() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, host.count - 1)
        let hostName = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self).map { $0 == "/" || $0 == ":" ? "_" : $0 }
        return "\(ts.tv_sec).M\(ts.tv_nsec / 1000)P\(getpid())R\(Hex.encode(Digest.randomBytes(8))).\(String(hostName))"
    }

    /// mkdir -p.
    static func makeDirectories(_ path: String) -> Bool {
        var current = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            current += "/" + part
            if mkdir(current, 0o700) != 0 && errno != EEXIST { return false }
        }
        return true
    }
}

/// Runs `/bin/sh -c COMMAND` with the message on stdin; exit status 0 means accepted.
/// The command's stdout goes to our stderr: our stdout is the record stream, and a
/// chatty mailer must not corrupt it. A command that does not finish within the timeout
/// is killed with its whole process group.
struct SendmailMailer: Mailer {
    let command: String
    let timeoutMillis: Int

    func send(_ message: [UInt8]) throws(MailError) {
        signal(SIGPIPE, SIG_IGN)
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw MailError(description: "pipe: \(errnoText(errno))") }
        // Neither end may leak into the command (or a later one): it would never see EOF.
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        let (readEnd, writeEnd) = (fds[0], fds[1])

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, readEnd, 0)
        posix_spawn_file_actions_adddup2(&actions, 2, 1)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)

        var pid = pid_t()
        let args = ["/bin/sh", "-c", command]
        var argv: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        let spawned = posix_spawn(&pid, "/bin/sh", &actions, &attributes, &argv, environ)
        close(readEnd)
        guard spawned == 0 else {
            close(writeEnd)
            throw MailError(description: "cannot run the mail command: \(errnoText(spawned))")
        }
        // The message is a few KiB: it fits in the pipe, so this write cannot hang on a
        // command that never reads. A command that exits without reading is its own
        // failure, reported by its status.
        _ = FileOutput.writeAll(writeEnd, message)
        close(writeEnd)

        let deadline = Clock.monotonicMillis() + timeoutMillis
        var status: Int32 = 0
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { break }
            if r < 0 && errno != EINTR { throw MailError(description: "waitpid: \(errnoText(errno))") }
            if Clock.monotonicMillis() >= deadline {
                kill(-pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                throw MailError(description: "the mail command did not finish within \(timeoutMillis) ms")
            }
            usleep(2_000)
        }
        let signalled = status & 0x7F
        let code = (status >> 8) & 0xFF
        if signalled != 0 { throw MailError(description: "the mail command was killed by signal \(signalled)") }
        if code != 0 { throw MailError(description: "the mail command exited with status \(code)") }
    }
}
