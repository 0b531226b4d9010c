import sys
from pathlib import Path

# The reference implementation in tests/ is imported by name from test modules in sub-folders.
sys.path.insert(0, str(Path(__file__).parent))
