"""`python -m electra ...` and `torchrun -m electra ...` run the same CLI as the `electra` command."""
from electra.cli import main

raise SystemExit(main())
