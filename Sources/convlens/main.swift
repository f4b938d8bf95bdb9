import Engine
print("convlens: threads \(ComputeThreads.current)")
