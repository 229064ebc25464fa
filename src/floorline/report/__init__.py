"""`floorline report`: every section this machine can run, one registration per capability."""
