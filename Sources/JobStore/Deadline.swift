import Foundation
import Synchronization

/// Runs `body` but returns (throwing `JobStoreError.unavailable`) after `timeout`
/// even if `body` does not react to cancellation. Unstructured on purpose: a
/// query stuck on a half-open TCP connection must not hold the caller hostage;
/// it is cancelled and left to finish on its own. `discard` disposes of a value
/// that arrives after the caller has given up (a connection must be closed).
func withDeadline<T: Sendable>(
    _ timeout: Duration,
    _ what: String,
    discard: (@Sendable (T) async -> Void)? = nil,
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let gate = Gate<T>()
    let work = Task {
        do {
            let value = try await body()
            if !gate.finish(.success(value)) { await discard?(value) }
        } catch {
            gate.finish(.failure(JobStoreError(mapping: error)))
        }
    }
    let timer = Task {
        try await Task.sleep(for: timeout)
        gate.finish(.failure(JobStoreError.unavailable("\(what): no answer within \(timeout)")))
        work.cancel()
    }
    defer { timer.cancel() }
    return try await withTaskCancellationHandler {
        try await gate.wait()
    } onCancel: {
        work.cancel()
    }
}

/// A one-shot result that whichever of work and timer comes first fills.
private final class Gate<T: Sendable>: Sendable {
    private enum State {
        case pending
        case waiting(CheckedContinuation<T, any Error>)
        case finished(Result<T, any Error>)
        case consumed
    }
    private let state = Mutex<State>(.pending)

    /// Returns false when the other side got there first (the result is unused).
    @discardableResult
    func finish(_ result: Result<T, any Error>) -> Bool {
        let (delivered, waiter): (Bool, CheckedContinuation<T, any Error>?) = state.withLock { state in
            switch state {
            case .pending:
                state = .finished(result)
                return (true, nil)
            case .waiting(let continuation):
                state = .consumed
                return (true, continuation)
            case .finished, .consumed: return (false, nil)
            }
        }
        waiter?.resume(with: result)
        return delivered
    }

    func wait() async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let ready: Result<T, any Error>? = state.withLock { state in
                switch state {
                case .pending:
                    state = .waiting(continuation)
                    return nil
                case .finished(let result):
                    state = .consumed
                    return result
                case .waiting, .consumed: preconditionFailure("Gate waited on twice")
                }
            }
            if let ready { continuation.resume(with: ready) }
        }
    }
}
