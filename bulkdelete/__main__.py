"""Let ``python -m bulkdelete`` run the CLI."""

from bulkdelete.cli import main

main()
