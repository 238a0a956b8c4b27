"""bulkdelete: delete CometChat users in bulk, paced, retried, and accounted for in an audit."""

__version__ = "0.1.0"
