import Foundation
import JobStore
import Synchronization

/// One LISTEN per process, fanned out: a task waiting for a job to change (a request
/// waiting for its picture, an event stream) or for any queued job (an idle worker)
/// wakes on the notification, or after its timeout at the latest — notifications are
/// hints, the table is the truth, so every waiter re-reads after waking.
final class JobEventHub: Sendable {
    private struct Waiter {
        /// nil: woken by any job becoming queued.
        let job: UUID?
        let continuation: CheckedContinuation<Void, Never>
    }

    private let waiters = Mutex<[UUID: Waiter]>([:])

    /// Consumes the store's notifications until the task is cancelled.
    func run(_ store: PostgresJobStore) async {
        for await event in store.listen() {
            switch event {
            case .listening:
                // (Re)connected: anything may have been missed.
                wake { _ in true }
            case .changed(let change):
                wake { $0.job == change.id || ($0.job == nil && change.state == .queued) }
            }
        }
    }

    /// Returns when `job` changes (nil: when a job is queued), or after `timeout`.
    func waitForChange(of job: UUID?, timeout: Duration) async {
        let token = UUID()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            waiters.withLock { $0[token] = Waiter(job: job, continuation: continuation) }
            Task {
                try? await Task.sleep(for: timeout)
                self.resume(token)
            }
        }
    }

    private func resume(_ token: UUID) {
        waiters.withLock { $0.removeValue(forKey: token) }?.continuation.resume()
    }

    private func wake(_ matching: (Waiter) -> Bool) {
        let woken = waiters.withLock { all -> [Waiter] in
            let tokens = all.filter { matching($0.value) }.map(\.key)
            return tokens.compactMap { all.removeValue(forKey: $0) }
        }
        for w in woken { w.continuation.resume() }
    }
}
