#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records
import SharedMemory

/// Records each audit annotation in the log, then strips it: the annotation never
/// leaves the service.
struct AuditFilter {
    let log: AuditLog

    func handle(_ record: inout Record) {
        guard let note = record.annotation(AnnotationKey.audit) else { return }
        if !note.isNull {
            let outcome = log.append(AuditEntry(annotation: note, record: record))
            GroupSyncTimer.afterAppend()
            if let m = Metrics.shared {
                if case .written = outcome { m.add(m.layout.auditAppends) } else { m.add(m.layout.auditSpills) }
            }
        }
        record.setAnnotation(AnnotationKey.audit, nil)
    }

    /// The log path: --file, else EDGEPIPE_AUDIT_FILE, else $EDGEPIPE_DATA/audit/audit.log.
    static func logPath(_ options: ParsedOptions) -> String {
        if let path = options.value("--file") ?? dataPath("audit/audit.log") { return path }
        Log.fatal("no audit file: give --file, EDGEPIPE_AUDIT_FILE or EDGEPIPE_DATA")
    }
}

/// With grouped fsyncs, bounds how long an entry stays unsynced while the input is idle
/// (the loop is blocked in read): SIGALRM fsyncs the log, and exit fsyncs what is left.
/// fdatasync is async-signal-safe; the handler only reads a descriptor.
enum GroupSyncTimer {
    nonisolated(unsafe) static var fd: Int32 = -1
    nonisolated(unsafe) static var log: AuditLog?
    nonisolated(unsafe) static var millis = 0

    static func install(_ log: AuditLog, millis: Int) {
        guard log.groupFsync > 1 else { return }
        self.log = log
        self.millis = max(1, millis)
        fd = -1
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in
            let fd = GroupSyncTimer.fd
            if fd >= 0 { _ = fdatasync(fd) }
        }
        action.sa_flags = SA_RESTART
        sigemptyset(&action.sa_mask)
        sigaction(SIGALRM, &action, nil)
        atexit { GroupSyncTimer.log?.sync() }
    }

    static func afterAppend() {
        guard let log else { return }
        fd = log.fileDescriptor
        guard log.unsynced > 0 else { return }
        var current = itimerval()
        getitimer(__itimer_which_t(ITIMER_REAL.rawValue), &current)
        if current.it_value.tv_sec == 0 && current.it_value.tv_usec == 0 {
            var next = itimerval()
            next.it_value.tv_sec = millis / 1000
            next.it_value.tv_usec = (millis % 1000) * 1000
            setitimer(__itimer_which_t(ITIMER_REAL.rawValue), &next, nil)
        }
    }
}
