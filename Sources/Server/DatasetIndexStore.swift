import Foundation
import Logging
import Synchronization
import Visualization

/// The dataset examples index of the configured folders: found in the result store
/// under its content address (model digest, listing, k), or built by a job (at the priority of one filter) that
/// stores it there. Built lazily, by the first request that needs it: a server whose
/// gallery nobody opens never pays the pass over the folder. The decoded index of the
/// current address is kept in memory (one; a new address replaces it).
final class DatasetIndexStore: Sendable {
    let folders: DatasetFolders
    let k: Int
    private let logger: Logger
    private let decoded = Mutex<(key: String, index: DatasetIndex)?>(nil)

    enum State: Sendable {
        case ready(DatasetIndex, address: ContentAddress, listing: DatasetFolders.Listing)
        case building(JobStatus, address: ContentAddress)
    }

    init(settings: ServerSettings, logger: Logger) {
        folders = DatasetFolders(folders: settings.datasetFolders, publicDir: settings.publicDir)
        k = settings.datasetK
        self.logger = logger
    }

    /// The index of the folders as they are now, or the job building it (new or joined).
    /// `result` is the URL the job's status points to.
    func current(_ service: ConvLensService, result: String) async throws -> State {
        let (folders, k, session) = (self.folders, self.k, service.session)
        let (listing, request) = try await service.executor.run(.interactive) {
            let listing = try folders.list()
            return (listing, try DatasetIndexRequest(files: listing.files, k: k).canonical(for: session))
        }
        let address = service.address(of: request)
        if let memo = decoded.withLock({ $0 }), memo.key == address.hex { return .ready(memo.index, address: address, listing: listing) }
        if let data = try await service.results.result(for: address.hex) {
            let index = try await service.executor.run(.interactive) { try DatasetIndex(serialized: data) }
            decoded.withLock { $0 = (address.hex, index) }
            logger.info(
                "dataset index \(address.hex.prefix(16)) read from the result store: \(index.images.count) images, \(data.count) bytes")
            return .ready(index, address: address, listing: listing)
        }
        let files = FileCollection { file in
            guard let url = listing.paths[file.name] else { throw VisualizationError.invalid("\(file.name) is not listed") }
            return try Data(contentsOf: url)
        }
        let status = try await service.jobs.submit(
            request, input: .files(files), address: address, priority: .job, resultPath: result)
        return .building(status, address: address)
    }
}
