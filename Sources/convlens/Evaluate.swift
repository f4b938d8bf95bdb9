import ArgumentParser
import Foundation
import Visualization

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare attribution methods by evidence: faithfulness metrics of their heatmaps.",
        discussion: """
            For each image, each method's map for one class (--class, or the top prediction)
            is scored by perturbing the image where the map points:
              deletion   RISE deletion AUC: pixels blacked out most-salient first (lower is better)
              insertion  RISE insertion AUC: from a blurred copy, pixels restored (higher is better)
              drop       average drop % of image × map (lower) and increase in confidence %
              road       ROAD: most/least relevant pixels imputed from their neighbours at
                         10 … 90 %; combined = (LeRF − MoRF)/2 (higher is better)
            The score is the model's output for the class (the probability of a softmax head).
            The table gives mean ± std over the images; json adds every image's row.

            Examples:
              convlens evaluate --input public/samples
              convlens evaluate --input cat.jpg --methods gradcam,scorecam --metrics road,deletion --format json
            """)

    @OptionGroup var model: ModelOptions
    @OptionGroup var inputOptions: InputOptions

    @Option(name: .long, help: "An image (PNG/JPEG), or a directory: every PNG/JPEG in it.")
    var input: String

    @Option(name: .long, help: "Comma-separated methods (default: all): \(CAMMethod.allCases.map(\.rawValue).joined(separator: ", ")).")
    var methods: String?

    @Option(name: .long, help: "Comma-separated metrics (default: all): deletion, insertion, drop, road.")
    var metrics: String?

    @Option(name: .customLong("class"), help: "Class index or label (default: each image's top prediction).")
    var classChoice: String?

    @Option(name: .long, help: "Layer of the layer-based methods (default: the last spatial conv output).")
    var layer: String?

    @Option(name: .long, help: "increase (default) or decrease: explain, and score, what lowers the score.")
    var target: TargetDirection?

    @Option(name: .long, help: "Segmentation: score the class over the cells this box covers, x0,y0,x1,y1 in image pixels.")
    var region: String?

    @Option(name: .long, help: "Points of the deletion/insertion curves (1...1000).")
    var steps = 50

    @Option(name: .long, help: "Perturbed images per forward pass (1...256).")
    var batch = 16

    @Option(name: .long, help: "table, json or csv.")
    var format: EvaluationFormat = .table

    enum EvaluationFormat: String, ExpressibleByArgument { case table, json, csv }

    func run() throws {
        guard (1...1000).contains(steps) else { throw CLIError("--steps must be in 1...1000") }
        guard (1...256).contains(batch) else { throw CLIError("--batch must be in 1...256") }
        let methodList = try parseList(methods, all: CAMMethod.allCases, name: "method")
        let metricList = try parseList(metrics, all: FaithfulnessMetric.allCases, name: "metric")
        let box = try region.map { try PixelRegion(parsing: $0) }
        let files = try imageFiles(input)
        let m = try model.load(inputOptions)
        var rows: [EvaluationRow] = []
        let started = Date()
        for file in files {
            let data = try Data(contentsOf: file)
            let got = try m.session.evaluate(
                imageData: data, name: file.lastPathComponent, methods: methodList, metrics: Set(metricList), classChoice: classChoice,
                layer: layer, target: target, region: box, options: FaithfulnessOptions(steps: steps, batchSize: batch))
            if format != .json {
                for r in got {
                    printErr(
                        "\(r.image) class \(r.classIndex)\(r.label.map { " (\($0))" } ?? ""): \(r.method.rawValue) map \(String(format: "%.2f", r.mapSeconds)) s, metrics \(String(format: "%.2f", r.metricSeconds)) s"
                    )
                }
            }
            rows += got
        }
        let total = Date().timeIntervalSince(started)
        switch format {
        case .table: print(EvaluationTable(rows: rows, methods: methodList, metrics: metricList).text)
        case .csv: print(EvaluationTable(rows: rows, methods: methodList, metrics: metricList).csv)
        case .json:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let body = EvaluationReport(
                images: files.map(\.lastPathComponent), seconds: total,
                summary: EvaluationTable(rows: rows, methods: methodList, metrics: metricList).summary, rows: rows)
            print(String(decoding: try encoder.encode(body), as: UTF8.self))
        }
        if format != .json {
            let maps = rows.reduce(0) { $0 + $1.mapSeconds }
            let scoring = rows.reduce(0) { $0 + $1.metricSeconds }
            printErr(
                "\(files.count) image(s) × \(methodList.count) method(s) in \(String(format: "%.1f", total)) s: maps \(String(format: "%.1f", maps)) s, metrics \(String(format: "%.1f", scoring)) s"
            )
        }
    }

    private func parseList<T: RawRepresentable>(_ text: String?, all: [T], name: String) throws -> [T] where T.RawValue == String {
        guard let text else { return all }
        return try text.split(separator: ",").map { part in
            let key = part.trimmingCharacters(in: .whitespaces)
            guard let v = T(rawValue: key) else {
                throw CLIError("unknown \(name) '\(key)'; one of \(all.map(\.rawValue).joined(separator: ", "))")
            }
            return v
        }
    }

    private func imageFiles(_ path: String) throws -> [URL] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { throw CLIError("input not found: \(path)") }
        guard isDirectory.boolValue else { return [URL(fileURLWithPath: path)] }
        let names = try FileManager.default.contentsOfDirectory(atPath: path).sorted()
        let files = names.filter { ["png", "jpg", "jpeg"].contains(($0 as NSString).pathExtension.lowercased()) }
            .map { URL(fileURLWithPath: path).appendingPathComponent($0) }
        guard !files.isEmpty else { throw CLIError("no PNG or JPEG images in \(path)") }
        return files
    }
}

struct EvaluationReport: Encodable {
    var images: [String]
    var seconds: Double
    var summary: [EvaluationTable.Summary]
    var rows: [EvaluationRow]
}

/// Method × metric: mean ± standard deviation over the images.
struct EvaluationTable {
    let rows: [EvaluationRow]
    let methods: [CAMMethod]
    let metrics: [FaithfulnessMetric]

    struct Column {
        let name: String
        let better: String
        let value: (FaithfulnessScores) -> Double?
    }

    struct Summary: Encodable {
        var method: String
        var metric: String
        var mean: Double
        var std: Double
        var images: Int
    }

    var columns: [Column] {
        metrics.flatMap { metric -> [Column] in
            switch metric {
            case .deletion: return [Column(name: "deletion_auc", better: "lower", value: { $0.deletionAUC })]
            case .insertion: return [Column(name: "insertion_auc", better: "higher", value: { $0.insertionAUC })]
            case .drop:
                return [
                    Column(name: "average_drop", better: "lower", value: { $0.averageDrop }),
                    Column(name: "increase_in_confidence", better: "higher", value: { $0.increaseInConfidence }),
                ]
            case .road:
                return [
                    Column(name: "road_combined", better: "higher", value: { $0.roadCombined }),
                    Column(name: "road_morf", better: "lower", value: { $0.roadMoRF }),
                    Column(name: "road_lerf", better: "higher", value: { $0.roadLeRF }),
                ]
            }
        }
    }

    func statistics(_ method: CAMMethod, _ column: Column) -> (mean: Double, std: Double, n: Int)? {
        let values = rows.filter { $0.method == method }.compactMap { column.value($0.scores) }
        guard !values.isEmpty else { return nil }
        let mean = values.reduce(0, +) / Double(values.count)
        let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count)
        return (mean, variance.squareRoot(), values.count)
    }

    var summary: [Summary] {
        methods.flatMap { m in
            columns.compactMap { c in
                statistics(m, c).map { Summary(method: m.rawValue, metric: c.name, mean: $0.mean, std: $0.std, images: $0.n) }
            }
        }
    }

    var text: String {
        let cols = columns
        let width = 24
        var lines = [
            "method".padding(toLength: 22, withPad: " ", startingAt: 0) + cols.map { pad("\($0.name) (\($0.better))", width) }.joined()
        ]
        for m in methods {
            var line = m.rawValue.padding(toLength: 22, withPad: " ", startingAt: 0)
            for c in cols {
                line += pad(statistics(m, c).map { String(format: "%.4f ± %.4f", $0.mean, $0.std) } ?? "-", width)
            }
            lines.append(line)
        }
        // The best method per column, so the table answers "which one?" at a glance.
        for c in cols {
            let ranked = methods.compactMap { m in statistics(m, c).map { (m, $0.mean) } }
            guard let best = (c.better == "lower" ? ranked.min { $0.1 < $1.1 } : ranked.max { $0.1 < $1.1 }) else { continue }
            if ranked.allSatisfy({ $0.1 == best.1 }) {
                lines.append("best \(c.name): a tie, every method \(String(format: "%.4f", best.1))")
            } else {
                lines.append("best \(c.name): \(best.0.rawValue) (\(String(format: "%.4f", best.1)))")
            }
        }
        return lines.joined(separator: "\n")
    }

    var csv: String {
        let cols = columns
        var lines = [(["image", "method", "class"] + cols.map(\.name)).joined(separator: ",")]
        for r in rows {
            lines.append(
                ([r.image, r.method.rawValue, String(r.classIndex)] + cols.map { c in c.value(r.scores).map { String($0) } ?? "" })
                    .joined(separator: ","))
        }
        return lines.joined(separator: "\n")
    }

    private func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s.padding(toLength: n, withPad: " ", startingAt: 0) }
}
