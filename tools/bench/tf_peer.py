"""TensorFlow and Keras for a bench peer script, set up before TensorFlow is first
imported: quiet C++ logs, the TensorFlow backend, and the thread budget the ConvLens side
gets (intra-op threads; the inter-op pool as the calling script chooses)."""
import os


def tensorflow(intra_op_threads, inter_op_threads):
    """Imports and returns (tensorflow, keras) with these thread pools."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(intra_op_threads)
    tf.config.threading.set_inter_op_parallelism_threads(inter_op_threads)
    import keras

    return tf, keras
