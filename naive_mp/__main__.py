from naive_mp.cli import main

main()
