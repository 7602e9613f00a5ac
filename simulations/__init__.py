"""simulations: class-conditional families with exact population quantities, Monte Carlo
estimators, hypothesis strategies, sweeps and small trained networks (DESIGN.md layers:
``simulations`` imports ``ncbounds``, never ``figures``)."""
