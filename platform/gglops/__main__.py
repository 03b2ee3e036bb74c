from gglops.cli import main

main()
